using System.Net;

namespace Sandbox.Agent.Server;

/// <summary>
/// A virtio-serial port the host connects to through QEMU (a `virtserialport` with a socket chardev): the agent's
/// channel in a VM cloned from a template, where vsock cannot be (QEMU refuses to migrate vhost-user-vsock, and
/// vhost-user needs guest memory the clone maps privately). One connection at a time; see
/// <see cref="VirtioSerialListener"/>.
/// </summary>
public sealed class VirtioSerialEndPoint(string name, string devicePath) : EndPoint
{
    /// <summary>The port name the shim gives the agent's channel (QEMU `virtserialport,name=`).</summary>
    public const string AgentPortName = "sandbox.agent";
    /// <summary>The second port, for the operator's tools (sandboxctl exec, metrics, doctor): a port serves one client
    /// at a time, and the shim holds the first for the sandbox's life.</summary>
    public const string ToolsPortName = "sandbox.tools";

    /// <summary>The port's name, as QEMU announces it.</summary>
    public string Name { get; } = name;
    /// <summary>Its character device, /dev/vportNpM.</summary>
    public string DevicePath { get; } = devicePath;

    /// <summary>The port called <paramref name="name"/>, found through sysfs (no udev in the guest to make
    /// /dev/virtio-ports/NAME), or null when this VM has none.</summary>
    public static VirtioSerialEndPoint? Find(string name, string sysClassDirectory = "/sys/class/virtio-ports", string devDirectory = "/dev")
    {
        if (!Directory.Exists(sysClassDirectory))
            return null;
        foreach (var port in Directory.EnumerateDirectories(sysClassDirectory).Order(StringComparer.Ordinal))
        {
            string nameFile = Path.Combine(port, "name");
            if (File.Exists(nameFile) && File.ReadAllText(nameFile).Trim() == name)
                return new VirtioSerialEndPoint(name, Path.Combine(devDirectory, Path.GetFileName(port)));
        }
        return null;
    }

    public override string ToString() => $"virtio-serial:{Name} ({DevicePath})";
}
