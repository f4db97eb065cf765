using System.Diagnostics;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// `ctr run --rm IMAGE ID true` through a private containerd, with runc (the yardstick) and with our shim (a fresh VM
/// each time, twice per round), against the bare-boot floor; the same with QEMU and its helpers unconfined
/// ([hypervisor.qemu] confine = false), twice in the same rounds in ABBA order, for the cost of the jail; gVisor (runsc
/// under the runc shim, <see cref="GvisorRuntime"/>) once per round, the peer; the shim daemon's RSS while it serves a
/// running container; and the idle memory of a gVisor container, the peer's figure for pod_pss_mib.
/// </summary>
public sealed class CtrRunBench(int rounds, ContainerdMatrix release)
{
    private const string OurRuntime = "io.containerd.sandbox.v2";
    private const string RuncRuntime = "io.containerd.runc.v2";

    public async Task RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        await using var containerd = await BenchContainerd.StartAsync();

        var runc = new List<double>();
        var ours = new List<double>();
        var unconfined = new List<double>();
        var floors = new List<double>();
        var gvisor = new List<double>();
        var runsc = await GvisorRuntime.PrepareAsync(containerd.Directory);
        Console.WriteLine($"gVisor: {runsc.Version} ({runsc.Runsc}, --network=none)");
        string unconfinedConfig = Path.Combine(containerd.Directory, "unconfined.toml");
        await File.WriteAllTextAsync(unconfinedConfig, "[hypervisor.qemu]\nconfine = false\n", cancellationToken);
        // Warm starts: VMs cloned from a template, kept under this run's own directory; the first run builds it (untimed).
        string sandboxes = Path.Combine(containerd.Directory, "sandboxes");
        string warmConfig = Path.Combine(containerd.Directory, "template.toml");
        string coldConfig = Path.Combine(containerd.Directory, "cold.toml");
        await File.WriteAllTextAsync(warmConfig, $"[hypervisor.qemu]\ntemplate = true\n\n[runtime]\nstate_root = \"{sandboxes}\"\n", cancellationToken);
        await File.WriteAllTextAsync(coldConfig, $"[runtime]\nstate_root = \"{sandboxes}\"\n", cancellationToken);
        double templateBuild = await TimeRunAsync(containerd, OurRuntime, "template-build", warmConfig);
        var warm = new List<double>();
        for (int round = 1; round <= rounds; round++)
        {
            floors.Add(await VmBootBench.FloorOnceAsync($"floor-ctr{round}", cancellationToken));
            runc.Add(await TimeRunAsync(containerd, RuncRuntime, $"runc{round}"));
            gvisor.Add(await TimeRunAsync(containerd, RuncRuntime, $"gvisor{round}", runcBinary: runsc.Wrapper));
            warm.Add(await TimeRunAsync(containerd, OurRuntime, $"warm{round}", warmConfig));
            // Two jailed and two unconfined runs per round in ABBA order (BAAB in even rounds), so that a load that
            // rises or falls during the round falls on both alike.
            bool jailedFirst = round % 2 == 1;
            for (int slot = 0; slot < 4; slot++)
            {
                bool jailed = (slot is 0 or 3) == jailedFirst;
                if (jailed)
                    ours.Add(await TimeRunAsync(containerd, OurRuntime, $"vm{round}-{slot}"));
                else
                    unconfined.Add(await TimeRunAsync(containerd, OurRuntime, $"vmu{round}-{slot}", unconfinedConfig));
            }
            Console.WriteLine(FormattableString.Invariant(
                $"round {round}/{rounds}: floor {floors[^1]:0.000} s, ctr run --rm true: runc {runc[^1]:0.000} s, gVisor {gvisor[^1]:0.000} s, warm {warm[^1]:0.000} s, sandbox {ours[^2]:0.000} {ours[^1]:0.000} s, unconfined {unconfined[^2]:0.000} {unconfined[^1]:0.000} s"));
        }
        double oursMedian = BenchReport.Median(ours);
        double floorSeconds = BenchReport.Median(floors);
        string on = $"containerd {release.Label}";
        report.Add("ctr_run_runc" + release.Suffix, BenchReport.Median(runc), "s", $"{on}: ctr run --rm busybox true through runc (median of {rounds})");
        report.Add("ctr_run" + release.Suffix, oursMedian, "s", $"{on}: ctr run --rm busybox true through our shim, one VM (median of {ours.Count})");
        report.Add("ctr_run_over_floor" + release.Suffix, oursMedian / floorSeconds, "ratio", $"{on}: ctr_run / the floor booted in the same rounds ({floorSeconds:0.000} s) (target <= 2, goal 1.3)");
        double gvisorMedian = BenchReport.Median(gvisor);
        report.Add("ctr_run_gvisor" + release.Suffix, gvisorMedian, "s", $"{on}: ctr run --rm busybox true through gVisor ({runsc.Version}, runc shim, --network=none) (median of {rounds})");
        report.Add("ctr_run_over_gvisor" + release.Suffix, oursMedian / gvisorMedian, "ratio", $"{on}: ctr_run (a cold VM boot) / ctr_run_gvisor, same rounds");
        double warmMedian = BenchReport.Median(warm);
        report.Add("ctr_run_warm" + release.Suffix, warmMedian, "s",
            $"{on}: ctr run --rm busybox true through our shim, the VM cloned from a template ([hypervisor.qemu] template = true) (median of {rounds}; " +
            $"the template's build, in the first run: {templateBuild:0.00} s)");
        report.Add("ctr_run_warm_over_floor" + release.Suffix, warmMedian / floorSeconds, "ratio", $"{on}: ctr_run_warm / the same floor (target <= 0.6)");
        report.Add("ctr_run_warm_over_gvisor" + release.Suffix, warmMedian / gvisorMedian, "ratio", $"{on}: ctr_run_warm / ctr_run_gvisor, same rounds (target <= 2)");
        double warmPss = await TenIdleSandboxesPssPerSandboxMiBAsync(containerd, warmConfig, sandboxes, "warm", cancellationToken);
        report.Add("ctr_pss_mib_10_warm" + release.Suffix, warmPss, "MiB",
            $"{on}: PSS per sandbox of ten idle ones at once (ctr run -d sleep; QEMU + shim), cloned from the template (the pod bench has the CRI figure)");
        double coldPss = await TenIdleSandboxesPssPerSandboxMiBAsync(containerd, coldConfig, sandboxes, "cold", cancellationToken);
        report.Add("ctr_pss_mib_10_cold" + release.Suffix, coldPss, "MiB", $"{on}: the same ten sandboxes booted cold (QEMU + vsock daemon + shim)");
        report.Add("ctr_pss_warm_over_cold" + release.Suffix, warmPss / coldPss, "ratio", $"{on}: ctr_pss_mib_10_warm / ctr_pss_mib_10_cold");
        double unconfinedMedian = BenchReport.Median(unconfined);
        report.Add("ctr_run_unconfined" + release.Suffix, unconfinedMedian, "s", $"{on}: ctr_run with confine = false (no jail), same rounds (median of {unconfined.Count})");
        report.Add("ctr_run_unconfined_over_floor" + release.Suffix, unconfinedMedian / floorSeconds, "ratio", $"{on}: ctr_run_unconfined / the same floor");
        // Paired: the runs paired in one round share that round's load; on this noisy host single runs differ by up to
        // 0.9 s, and the median of the differences is steadier than the difference of the medians.
        var paired = ours.Zip(unconfined, (jailed, free) => jailed - free).ToList();
        report.Add("confinement_cost_over_floor" + release.Suffix, BenchReport.Median(paired) / floorSeconds, "ratio",
            $"{on}: median of the {paired.Count} paired (ctr_run - ctr_run_unconfined) / the floor: what the jail adds (target <= 0.05)");
        double gvisorIdleKiB = await GvisorIdlePssAsync(containerd, runsc);
        report.Add("idle_pss_gvisor_mib" + release.Suffix, gvisorIdleKiB / 1024.0, "MiB",
            $"{on}: PSS of one idle gVisor container (its runc shim and every process under it: runsc's sandbox and gofer), {RssSettleTime.TotalSeconds:0} s after ctr run -d returned");
        var (atStartKiB, settledKiB) = await ShimRssAsync(containerd);
        report.Add("shim_rss_start_mib" + release.Suffix, atStartKiB / 1024.0, "MiB", $"{on}: shim daemon VmRSS as soon as ctr run -d returned (create/start garbage still held)");
        report.Add("shim_rss_mib" + release.Suffix, settledKiB / 1024.0, "MiB",
            $"{on}: shim daemon VmRSS serving one running container, {RssSettleTime.TotalSeconds:0} s after ctr run -d returned (target <= 15)");
    }

    private static async Task<double> TimeRunAsync(PrivateContainerd containerd, string runtime, string id, string? runtimeConfig = null,
        string? runcBinary = null)
    {
        string[] config = runtimeConfig is null ? [] : ["--runtime-config-path", runtimeConfig];
        if (runcBinary is not null)
            config = [.. config, "--runc-binary", runcBinary];
        var clock = Stopwatch.StartNew();
        var result = await containerd.CtrAsync(["run", "--rm", "--fifo-dir", containerd.FifoDirectory, "--runtime", runtime, .. config,
            BusyboxOciImage.DefaultName, id, "true"]);
        double seconds = clock.Elapsed.TotalSeconds;
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"{runtime}: {result}\n--- containerd log ---\n{containerd.Log}");
        return seconds;
    }

    /// <summary>
    /// How long the container runs before the shim's RSS is read. A shim lives as long as its container and spends
    /// nearly all of it idle; once idle for a second it gives back what creating and starting the container allocated
    /// (IdleMemoryTrimmer), so a few seconds in, its RSS is the footprint a host pays per pod.
    /// </summary>
    private static readonly TimeSpan RssSettleTime = TimeSpan.FromSeconds(5);

    private const int TenSandboxes = 10;

    /// <summary>Starts ten idle sandboxes (`ctr run -d ... sleep`) with <paramref name="configuration"/>, lets them
    /// settle, and returns the PSS of their VM processes and shims together divided by ten; then removes them.</summary>
    private static async Task<double> TenIdleSandboxesPssPerSandboxMiBAsync(PrivateContainerd containerd, string configuration, string stateRoot,
        string label, CancellationToken cancellationToken)
    {
        var ids = Enumerable.Range(0, TenSandboxes).Select(i => $"{label}-idle{i}").ToList();
        var started = new List<string>();
        try
        {
            foreach (string id in ids)
            {
                var run = await containerd.CtrAsync(["run", "-d", "--fifo-dir", containerd.FifoDirectory, "--runtime", OurRuntime,
                    "--runtime-config-path", configuration, BusyboxOciImage.DefaultName, id, "sleep", "600"]);
                if (run.ExitCode != 0)
                    throw new InvalidOperationException($"ctr run -d {id}: {run}\n--- containerd log ---\n{containerd.Log}");
                started.Add(id);
            }
            await Task.Delay(RssSettleTime, cancellationToken);
            var vmProcesses = ids.SelectMany(id => LeftoverVmProcesses.Find(Path.Combine(stateRoot, id)).Select(p => p.Pid));
            long totalKiB = vmProcesses.Concat(containerd.LeftoverShimProcesses()).Distinct().Sum(ProcessMemory.PssKiB);
            double perSandbox = totalKiB / 1024.0 / TenSandboxes;
            Console.WriteLine(FormattableString.Invariant($"{TenSandboxes} idle sandboxes ({label}): {totalKiB / 1024.0:0} MiB PSS together, {perSandbox:0.0} MiB each"));
            return perSandbox;
        }
        finally
        {
            foreach (string id in started)
            {
                await containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", id]);
                await containerd.WaitUntilTaskStoppedOrGoneAsync(id, TimeSpan.FromSeconds(60));
                await containerd.CtrAsync(["task", "rm", "-f", id]);
                await containerd.CtrAsync(["container", "rm", id]);
            }
        }
    }

    /// <summary>PSS in KiB of an idle gVisor container, <see cref="RssSettleTime"/> after `ctr run -d` returned: its
    /// runc shim and every process under it (runsc's sandbox, gofer and their helpers).</summary>
    private static async Task<long> GvisorIdlePssAsync(PrivateContainerd containerd, GvisorRuntime runsc)
    {
        var run = await containerd.CtrAsync(["run", "-d", "--fifo-dir", containerd.FifoDirectory, "--runtime", RuncRuntime,
            "--runc-binary", runsc.Wrapper, BusyboxOciImage.DefaultName, "gvisor-idle", "sleep", "600"]);
        if (run.ExitCode != 0)
            throw new InvalidOperationException($"ctr run -d with gVisor: {run}\n--- containerd log ---\n{containerd.Log}");
        try
        {
            await Task.Delay(RssSettleTime);
            var shim = containerd.LeftoverShimProcesses().Single();
            return ProcessMemory.TreePssKiB(shim);
        }
        finally
        {
            await containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", "gvisor-idle"]);
            await containerd.WaitUntilTaskStoppedOrGoneAsync("gvisor-idle", TimeSpan.FromSeconds(30));
            await containerd.CtrAsync(["task", "rm", "-f", "gvisor-idle"]);
            await containerd.CtrAsync(["container", "rm", "gvisor-idle"]);
        }
    }

    /// <summary>The daemon's VmRSS in KiB right after `ctr run -d` returned, and <see cref="RssSettleTime"/> later.</summary>
    private static async Task<(long AtStart, long Settled)> ShimRssAsync(PrivateContainerd containerd)
    {
        var run = await containerd.CtrAsync(["run", "-d", "--fifo-dir", containerd.FifoDirectory, "--runtime", OurRuntime,
            BusyboxOciImage.DefaultName, "rss", "sleep", "600"]);
        if (run.ExitCode != 0)
            throw new InvalidOperationException($"ctr run -d: {run}\n--- containerd log ---\n{containerd.Log}");
        try
        {
            var shim = containerd.LeftoverShimProcesses().Single();
            long atStart = ProcessMemory.RssKiB(shim);
            await Task.Delay(RssSettleTime);
            return (atStart, ProcessMemory.RssKiB(shim));
        }
        finally
        {
            await containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", "rss"]);
            await Task.Delay(500);
            await containerd.CtrAsync(["task", "rm", "-f", "rss"]);
            await containerd.CtrAsync(["container", "rm", "rss"]);
        }
    }
}
