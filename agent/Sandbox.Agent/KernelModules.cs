using System.Text;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Native;

namespace Sandbox.Agent;

/// <summary>
/// Loads guest kernel modules on demand with modprobe (one process for the whole list). A module counts as present
/// when /sys/module/NAME exists (loaded, or built in with parameters), so the common case costs no process start.
/// </summary>
public sealed class KernelModules(string modprobePath)
{
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>Loads the modules of <paramref name="modules"/> that are not present yet. Throws an Internal RpcException
    /// with modprobe's error text for <paramref name="purpose"/> when it fails.</summary>
    public async Task EnsureLoadedAsync(string[] modules, string purpose, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            string[] missing = modules.Where(m => !Directory.Exists(Path.Combine("/sys/module", m))).ToArray();
            if (missing.Length > 0) await ModprobeAsync(missing, purpose, cancellationToken);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task ModprobeAsync(string[] modules, string purpose, CancellationToken cancellationToken)
    {
        string list = string.Join(" ", modules);
        int devNull = LibC.OpenDevNull();
        var (errRead, errWrite) = LibC.CreatePipe();
        using var errors = new OutputStream(errRead);
        ChildExit exit;
        try
        {
            var (_, exited) = ChildProcesses.Shared.Spawn(modprobePath, [modprobePath, "-a", .. modules], devNull, devNull, errWrite);
            LibC.Close(errWrite);
            errWrite = -1;
            exit = await exited.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"{purpose}: cannot run {modprobePath} -a {list}: {e.Message}");
        }
        catch (TimeoutException)
        {
            throw AgentErrors.Internal($"{purpose}: {modprobePath} -a {list} did not finish within 30 s");
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
            throw AgentErrors.Internal($"{purpose}: {modprobePath} -a {list} exited with status {exit.ExitStatus}: {text.ToString().Trim()} (are the modules in /lib/modules/{GuestFacts.KernelRelease()} of the guest image?)");
        }
    }
}
