namespace Sandbox.Hypervisors.Qemu;

/// <summary>
/// The files one QEMU sandbox keeps in its state directory. console.log, qemu.log, vsockd.log and the *.cmdline files stay after a stop (they
/// are the sandbox's record; the runtime removes the directory); sockets and the pid file are removed on stop.
/// </summary>
public sealed class QemuStateFiles
{
    /// <summary>Longest Unix socket path the kernel accepts (sun_path is 108 bytes with the terminating NUL).</summary>
    public const int MaxSocketPathBytes = 107;

    public QemuStateFiles(string stateDirectory)
    {
        Directory = Path.GetFullPath(stateDirectory);
    }

    public string Directory { get; }
    public string ConsoleLog => Path.Combine(Directory, "console.log");
    public string QemuCommandLine => Path.Combine(Directory, "qemu.cmdline");
    public string VsockDaemonCommandLine => Path.Combine(Directory, "vsockd.cmdline");
    /// <summary>What QEMU wrote on stdout and stderr, each line with the host's time.</summary>
    public string QemuLog => Path.Combine(Directory, "qemu.log");
    /// <summary>What vhost-device-vsock wrote, each line with the host's time.</summary>
    public string VsockDaemonLog => Path.Combine(Directory, "vsockd.log");
    public string QemuPidFile => Path.Combine(Directory, "qemu.pid");
    /// <summary>An empty directory the jailer mounts each jail's root on, inside the jail's own mount namespace.</summary>
    public string JailRoot => Path.Combine(Directory, "jail");
    public string QmpSocket => Path.Combine(Directory, "qmp.sock");
    /// <summary>vhost-user control socket between QEMU and vhost-device-vsock (hybrid mode).</summary>
    public string VhostUserVsockSocket => Path.Combine(Directory, "vhost-vsock.sock");
    /// <summary>Where the host dials the guest in hybrid mode (CONNECT port / OK).</summary>
    public string HybridVsockSocket => Path.Combine(Directory, "vsock.sock");

    /// <summary>The agent's virtio-serial port (a template source or clone): QEMU's chardev socket.</summary>
    public string AgentSerialSocket => Path.Combine(Directory, "agent.sock");
    /// <summary>The second virtio-serial port, for the operator's tools (sandboxctl).</summary>
    public string ToolsSerialSocket => Path.Combine(Directory, "tools.sock");
    /// <summary>Where a template's device state passes between QEMU and this process (saved or restored).</summary>
    public string MigrationSocket => Path.Combine(Directory, "migration.sock");
    /// <summary>A template source's guest RAM (see <see cref="VmTemplateRole.Source"/>).</summary>
    public string TemplateMemory => Path.Combine(Directory, VmTemplateRole.SourceMemoryFileName);

    /// <summary>Sockets and temporary files removed on stop (not the console log or the command lines).</summary>
    public IEnumerable<string> Ephemeral => [QmpSocket, VhostUserVsockSocket, HybridVsockSocket, AgentSerialSocket, ToolsSerialSocket, MigrationSocket, QemuPidFile];

    /// <summary>Socket paths that would exceed the kernel's limit, for a clear error before anything starts.</summary>
    public IEnumerable<string> TooLongSocketPaths(bool hybridVsock)
    {
        var sockets = hybridVsock
            ? new[] { QmpSocket, VhostUserVsockSocket, HybridVsockSocket, AgentSerialSocket, ToolsSerialSocket, MigrationSocket }
            : [QmpSocket, AgentSerialSocket, ToolsSerialSocket, MigrationSocket];
        return sockets.Where(s => System.Text.Encoding.UTF8.GetByteCount(s) > MaxSocketPathBytes);
    }
}
