using System.Text;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Network;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent;

/// <summary>CreateSandbox / DestroySandbox: the hostname, the loopback interface and the 9p share. Modules are loaded only when needed.</summary>
public sealed class SandboxSetup(AgentRuntime runtime, KernelModules modules, GuestNetwork network)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string? _sandboxId;
    private string? _mountPoint;

    public string? SandboxId => _sandboxId;

    /// <summary>Whether CreateSandbox asked for the debug console (`sandboxctl exec`).</summary>
    public bool DebugConsoleEnabled { get; private set; }

    public async Task CreateAsync(string sandboxId, string hostname, string shareTag, string mountPoint, bool debugConsole,
        CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (_sandboxId != null)
                throw AgentErrors.FailedPrecondition($"sandbox {_sandboxId} already exists in this VM (CreateSandbox runs once)");
            if (hostname.Length > 64) throw AgentErrors.InvalidArgument($"hostname '{hostname}' is longer than 64 bytes");
            if (hostname.Length > 0) SetHostName(hostname);
            // The VM is the pod's network namespace: its containers talk to each other over localhost.
            await network.EnsureLoopbackUpAsync(cancellationToken);
            if (shareTag.Length > 0)
            {
                if (mountPoint.Length == 0) mountPoint = runtime.DefaultSharedMountPoint;
                if (!mountPoint.StartsWith('/')) throw AgentErrors.InvalidArgument($"shared_mount_point '{mountPoint}' is not an absolute path");
                await modules.EnsureLoadedAsync(["9pnet_virtio", "9p"], $"sandbox {sandboxId}: mount the 9p share '{shareTag}'", cancellationToken);
                Directory.CreateDirectory(mountPoint);
                if (LibCStrings.mount(shareTag, mountPoint, "9p", 0, "trans=virtio,version=9p2000.L,msize=512000,cache=mmap") != 0)
                {
                    int errno = Errno.Last;
                    throw AgentErrors.Internal($"sandbox {sandboxId}: mount of 9p share '{shareTag}' on {mountPoint} failed: {Errno.Describe(errno)} (is the virtio-9p device with mount_tag={shareTag} attached?)");
                }
                _mountPoint = mountPoint;
            }
            _sandboxId = sandboxId.Length > 0 ? sandboxId : "(unnamed)";
            DebugConsoleEnabled = debugConsole;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task DestroyAsync(ContainerRunner containers, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var errors = await containers.RemoveAllBeforePowerOffAsync(cancellationToken);
            if (_mountPoint != null)
            {
                if (LibCStrings.umount2(_mountPoint, 0) != 0)
                {
                    int errno = Errno.Last;
                    errors.Add($"unmount of {_mountPoint} failed: {Errno.Describe(errno)}; detached instead");
                    LibCStrings.umount2(_mountPoint, MNT_DETACH);
                }
                _mountPoint = null;
            }
            _sandboxId = null;
            if (errors.Count > 0) throw AgentErrors.Internal("destroy sandbox: " + string.Join("; ", errors));
        }
        finally
        {
            _lock.Release();
        }
    }

    private static unsafe void SetHostName(string hostname)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(hostname);
        fixed (byte* p = bytes)
        {
            if (sethostname(p, bytes.Length) != 0)
                throw AgentErrors.Internal($"sethostname('{hostname}') failed: {Errno.DescribeLast()}");
        }
    }
}
