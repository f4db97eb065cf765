using System.Text;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Native;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent;

/// <summary>
/// Loads guest kernel modules on demand with modprobe (one process for the whole list). A module counts as present
/// when /sys/module/NAME exists (loaded, or built in with parameters), so the common case costs no process start. A
/// kernel built without loadable modules (no /proc/modules: our own guest kernel, images/kernel/sandbox-guest.config)
/// has everything it has built in, and nothing is ever loaded.
/// The modules for the VM's own virtio devices can be loaded ahead, in the background (<see cref="PreloadForVirtioDevices"/>).
/// </summary>
public sealed class KernelModules(string modprobePath, string procModulesPath = "/proc/modules")
{
    /// <summary>virtio device id (virtio spec 5) -> the modules its first use needs: 1 network card (UpdateInterface),
    /// 9 the 9p share (CreateSandbox mounts it).</summary>
    private static readonly Dictionary<int, string[]> VirtioDeviceModules = new()
    {
        [1] = ["virtio_net"],
        [9] = ["9pnet_virtio", "9p"],
    };

    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>
    /// The modules the VM's virtio devices (<paramref name="virtioDevicesDirectory"/>/*/device holds each id, e.g.
    /// 0x0009) will need, in a fixed order, without duplicates. Unknown ids and unreadable entries are skipped.
    /// </summary>
    public static string[] ForVirtioDevices(string virtioDevicesDirectory = "/sys/bus/virtio/devices")
    {
        var ids = new SortedSet<int>();
        if (!Directory.Exists(virtioDevicesDirectory)) return [];
        foreach (string device in Directory.EnumerateDirectories(virtioDevicesDirectory))
        {
            try
            {
                string text = File.ReadAllText(Path.Combine(device, "device")).Trim();
                if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                    && int.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.HexNumber, null, out int id))
                    ids.Add(id);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return ids.Where(VirtioDeviceModules.ContainsKey).SelectMany(id => VirtioDeviceModules[id]).Distinct().ToArray();
    }

    /// <summary>
    /// Starts loading the modules of the VM's virtio devices (<see cref="ForVirtioDevices"/>) in the background, right
    /// after the agent listens, while the host is still connecting: the RPC that needs them (CreateSandbox,
    /// UpdateInterface) then finds them loaded, or waits for this load instead of starting its own. A failure is only
    /// logged: that RPC's own <see cref="EnsureLoadedAsync"/> then reports it.
    /// </summary>
    public Task PreloadForVirtioDevices(string virtioDevicesDirectory = "/sys/bus/virtio/devices") => Task.Run(async () =>
    {
        string[] modules = ForVirtioDevices(virtioDevicesDirectory);
        if (modules.Length == 0) return;
        try
        {
            await EnsureLoadedAsync(modules, "load the modules of the VM's devices ahead", CancellationToken.None);
        }
        catch (Exception e)
        {
            AgentLog.Write(e is global::Grpc.Core.RpcException rpc ? rpc.Status.Detail : e.Message);
        }
    });

    /// <summary>Loads the modules of <paramref name="modules"/> that are not present yet. Throws an Internal RpcException
    /// with modprobe's error text for <paramref name="purpose"/> when it fails.</summary>
    public async Task EnsureLoadedAsync(string[] modules, string purpose, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!File.Exists(procModulesPath)) return;
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
        int devNull = FileDescriptors.OpenDevNull();
        var (errRead, errWrite) = FileDescriptors.CreatePipe();
        using var errors = new OutputStream(errRead);
        ChildExit exit;
        try
        {
            long spawned = System.Diagnostics.Stopwatch.GetTimestamp();
            var (_, exited) = ChildProcesses.Shared.Spawn(modprobePath, [modprobePath, "-a", .. modules], devNull, devNull, errWrite);
            close(errWrite);
            errWrite = -1;
            exit = await exited.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            AgentLog.Write($"modprobe {list}: {AgentLog.Milliseconds(spawned)}");
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
            close(devNull);
            if (errWrite >= 0) close(errWrite);
        }
        if (exit.ExitStatus != 0)
        {
            var text = new StringBuilder();
            while (await errors.ReadAsync(4096, cancellationToken) is { } chunk) text.Append(Encoding.UTF8.GetString(chunk));
            throw AgentErrors.Internal($"{purpose}: {modprobePath} -a {list} exited with status {exit.ExitStatus}: {text.ToString().Trim()} (are the modules in /lib/modules/{GuestFacts.KernelRelease()} of the guest image?)");
        }
    }
}
