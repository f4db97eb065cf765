using System.Diagnostics;
using Sandbox.Agent.Protocol;
using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Bench;

/// <summary>
/// QEMU start to agent Health OK (our kernel, the default), against the floor: Debian's stock generic kernel with its
/// initramfs booted to a bare busybox init that powers off at once (QEMU start to QEMU exit). The floor stays that
/// fixed reference across versions of this project; our kernel's bare boot (vm_boot_own) is measured the same way.
/// </summary>
public sealed class VmBootBench(int rounds)
{
    private const string FloorInit = "rdinit=/sbin/floor-init";

    /// <summary>Runs the rounds and returns the floor's median (seconds), which the other benches compare against.</summary>
    public async Task<double> RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        var assets = GuestAssets.Locate();
        var generic = GuestAssets.Locate(GuestKernel.Generic);
        var stateRoot = Path.Combine("/tmp", "sbx-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(stateRoot);
        var floor = new List<double>();
        var own = new List<double>();
        var ready = new List<double>();
        var rss = new List<double>();
        try
        {
            for (int round = 1; round <= rounds; round++)
            {
                floor.Add(await BootToPowerOffAsync(generic, stateRoot, $"floor{round}", cancellationToken));
                own.Add(await BootToPowerOffAsync(assets, stateRoot, $"own{round}", cancellationToken));
                var (seconds, agentRss) = await BootToAgentReadyAsync(assets, stateRoot, $"ready{round}", cancellationToken);
                ready.Add(seconds);
                rss.Add(agentRss / (1024.0 * 1024.0));
                Console.WriteLine(FormattableString.Invariant(
                    $"round {round}/{rounds}: floor {floor[^1]:0.000} s, own kernel {own[^1]:0.000} s, agent ready {ready[^1]:0.000} s, agent RSS {rss[^1]:0.0} MiB"));
            }
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
        double floorMedian = BenchReport.Median(floor), readyMedian = BenchReport.Median(ready);
        double ownMedian = BenchReport.Median(own);
        report.Add("vm_boot_floor", floorMedian, "s", $"QEMU start to exit, Debian's generic kernel, bare busybox init that powers off (median of {rounds})");
        report.Add("vm_boot_own", ownMedian, "s", $"the same with our kernel and its initramfs (median of {rounds})");
        report.Add("vm_boot_own_over_floor", ownMedian / floorMedian, "ratio", "vm_boot_own / vm_boot_floor (target <= 0.6)");
        report.Add("agent_ready", readyMedian, "s", $"QEMU start to agent Health OK over vsock (median of {rounds})");
        report.Add("agent_ready_over_floor", readyMedian / floorMedian, "ratio", "agent_ready / vm_boot_floor (target <= 1.5)");
        report.Add("agent_rss_mib", BenchReport.Median(rss), "MiB", "agent VmRSS in the guest after Health");
        report.Add("image_initramfs_mib", new FileInfo(assets.InitrdPath).Length / (1024.0 * 1024.0), "MiB", "initramfs.cpio (uncompressed, our kernel's)");
        report.Add("image_kernel_mib", new FileInfo(assets.KernelPath).Length / (1024.0 * 1024.0), "MiB", "vmlinux (our kernel, uncompressed PVH ELF)");
        report.Add("image_initramfs_generic_mib", new FileInfo(generic.InitrdPath).Length / (1024.0 * 1024.0), "MiB", "initramfs-generic.cpio (with the generic kernel's modules)");
        report.Add("image_kernel_generic_mib", new FileInfo(generic.KernelPath).Length / (1024.0 * 1024.0), "MiB", "vmlinux-generic (Debian's kernel)");
        return floorMedian;
    }

    /// <summary>
    /// One floor boot, for a bench that interleaves it with its own rounds: its ratio then compares runs made at the
    /// same time, so a shared host that slows down or speeds up over the minutes of a long bench moves both alike.
    /// </summary>
    public static async Task<double> FloorOnceAsync(string id, CancellationToken cancellationToken)
    {
        var stateRoot = Path.Combine("/tmp", $"sbx-bench-{Environment.ProcessId}-{id}");
        Directory.CreateDirectory(stateRoot);
        try
        {
            return await BootToPowerOffAsync(GuestAssets.Locate(GuestKernel.Generic), stateRoot, id, cancellationToken);
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    private static VmConfig Config(GuestAssets assets, string stateRoot, string id, string extraKernelParameters)
    {
        var state = Path.Combine(stateRoot, id);
        Directory.CreateDirectory(state);
        return new VmConfig
        {
            SandboxId = id,
            StateDirectory = state,
            KernelPath = assets.KernelPath,
            InitrdPath = assets.InitrdPath,
            ExtraKernelParameters = extraKernelParameters,
        };
    }

    private static async Task<double> BootToPowerOffAsync(GuestAssets assets, string stateRoot, string id, CancellationToken cancellationToken)
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(Config(assets, stateRoot, id, FloorInit), cancellationToken);
        var clock = Stopwatch.StartNew();
        await vm.StartAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await vm.WaitForExitAsync(timeout.Token);
        double seconds = clock.Elapsed.TotalSeconds;
        await vm.StopAsync(cancellationToken);
        return seconds;
    }

    private static async Task<(double Seconds, ulong AgentRss)> BootToAgentReadyAsync(GuestAssets assets, string stateRoot, string id,
        CancellationToken cancellationToken)
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(Config(assets, stateRoot, id, ""), cancellationToken);
        var clock = Stopwatch.StartNew();
        await vm.StartAsync(cancellationToken);
        using var agent = new AgentConnection(SandboxVm.DialerFor(vm.AgentEndpoint), id);
        await AgentReadiness.WaitAsync(vm, agent, id, TimeSpan.FromMinutes(2), cancellationToken);
        double seconds = clock.Elapsed.TotalSeconds;
        var info = await agent.Client.GetGuestInfoAsync(new GetGuestInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30),
            cancellationToken: cancellationToken);
        await vm.StopAsync(cancellationToken);
        return (seconds, info.AgentRssBytes);
    }
}
