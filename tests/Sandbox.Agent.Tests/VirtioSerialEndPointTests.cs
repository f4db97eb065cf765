using Sandbox.Agent.Server;

namespace Sandbox.Agent.Tests;

public sealed class VirtioSerialEndPointTests : IDisposable
{
    private readonly string _sys = Directory.CreateTempSubdirectory("virtio-ports-").FullName;

    public void Dispose() => Directory.Delete(_sys, recursive: true);

    private void Port(string device, string name)
    {
        Directory.CreateDirectory(Path.Combine(_sys, device));
        File.WriteAllText(Path.Combine(_sys, device, "name"), name + "\n");
    }

    [Fact]
    public void The_agents_port_is_found_by_its_name_and_maps_to_its_device_node()
    {
        Port("vport0p0", "");
        Port("vport0p1", VirtioSerialEndPoint.AgentPortName);
        Port("vport1p1", "org.qemu.guest_agent.0");

        var found = VirtioSerialEndPoint.Find(VirtioSerialEndPoint.AgentPortName, _sys, "/dev");

        Assert.NotNull(found);
        Assert.Equal("/dev/vport0p1", found.DevicePath);
        Assert.Equal("virtio-serial:sandbox.agent (/dev/vport0p1)", found.ToString());
    }

    [Fact]
    public void A_vm_without_the_port_or_without_virtio_serial_has_none()
    {
        Port("vport1p1", "org.qemu.guest_agent.0");
        Assert.Null(VirtioSerialEndPoint.Find(VirtioSerialEndPoint.AgentPortName, _sys, "/dev"));
        Assert.Null(VirtioSerialEndPoint.Find(VirtioSerialEndPoint.AgentPortName, Path.Combine(_sys, "absent"), "/dev"));
    }
}
