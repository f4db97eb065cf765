using System.Text;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Native;

namespace Sandbox.Agent;

/// <summary>CreateSandbox / DestroySandbox: the hostname and the 9p share. Modules are loaded only when needed.</summary>
public sealed class SandboxSetup(AgentRuntime runtime)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string? _sandboxId;
    private string? _mountPoint;

    public string? SandboxId => _sandboxId;

    public async Task CreateAsync(string sandboxId, string hostname, string shareTag, string mountPoint, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (_sandboxId != null)
                throw AgentErrors.FailedPrecondition($"sandbox {_sandboxId} already exists in this VM (CreateSandbox runs once)");
            if (hostname.Length > 64) throw AgentErrors.InvalidArgument($"hostname '{hostname}' is longer than 64 bytes");
            if (hostname.Length > 0) SetHostName(hostname);
            if (shareTag.Length > 0)
            {
                if (mountPoint.Length == 0) mountPoint = runtime.DefaultSharedMountPoint;
                if (!mountPoint.StartsWith('/')) throw AgentErrors.InvalidArgument($"shared_mount_point '{mountPoint}' is not an absolute path");
                await LoadModulesAsync(["9pnet_virtio", "9p"], cancellationToken);
                Directory.CreateDirectory(mountPoint);
                if (LibC.Mount(shareTag, mountPoint, "9p", 0, "trans=virtio,version=9p2000.L,msize=512000,cache=mmap") != 0)
                {
                    int errno = LibC.LastError;
                    throw AgentErrors.Internal($"sandbox {sandboxId}: mount of 9p share '{shareTag}' on {mountPoint} failed: {LibC.ErrorText(errno)} (is the virtio-9p device with mount_tag={shareTag} attached?)");
                }
                _mountPoint = mountPoint;
            }
            _sandboxId = sandboxId.Length > 0 ? sandboxId : "(unnamed)";
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
            var errors = await containers.RemoveAllAsync(cancellationToken);
            if (_mountPoint != null)
            {
                if (LibC.Umount2(_mountPoint, 0) != 0)
                {
                    int errno = LibC.LastError;
                    errors.Add($"unmount of {_mountPoint} failed: {LibC.ErrorText(errno)}; detached instead");
                    LibC.Umount2(_mountPoint, LibC.MNT_DETACH);
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

    private async Task LoadModulesAsync(string[] modules, CancellationToken cancellationToken)
    {
        // Built-in or already loaded: nothing to do (also the case on a host).
        if (File.Exists("/proc/filesystems") && (await File.ReadAllTextAsync("/proc/filesystems", cancellationToken)).Contains("\t9p\n"))
            return;
        int devNull = LibC.OpenDevNull();
        var (errRead, errWrite) = LibC.CreatePipe();
        using var errors = new OutputStream(errRead);
        ChildExit exit;
        try
        {
            var (_, exited) = ChildProcesses.Shared.Spawn(runtime.ModprobePath, [runtime.ModprobePath, "-a", .. modules], devNull, devNull, errWrite);
            LibC.Close(errWrite);
            errWrite = -1;
            exit = await exited.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"cannot run {runtime.ModprobePath} for {string.Join(", ", modules)}: {e.Message}");
        }
        catch (TimeoutException)
        {
            throw AgentErrors.Internal($"{runtime.ModprobePath} {string.Join(" ", modules)} did not finish within 30 s");
        }
        finally
        {
            LibC.Close(devNull);
            if (errWrite >= 0) LibC.Close(errWrite);
        }
        if (exit.ExitStatus != 0)
        {
            var text = new StringBuilder();
            while (await errors.ReadAsync(4096, cancellationToken) is { } chunk) text.Append(Encoding.UTF8.GetString(chunk));
            throw AgentErrors.Internal($"{runtime.ModprobePath} -a {string.Join(" ", modules)} exited with status {exit.ExitStatus}: {text.ToString().Trim()}");
        }
    }

    private static unsafe void SetHostName(string hostname)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(hostname);
        fixed (byte* p = bytes)
        {
            if (LibC.SetHostName(p, (nuint)bytes.Length) != 0)
                throw AgentErrors.Internal($"sethostname('{hostname}') failed: {LibC.ErrorText(LibC.LastError)}");
        }
    }
}
