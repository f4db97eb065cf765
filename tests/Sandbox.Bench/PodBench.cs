using System.Diagnostics;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// Kubernetes pods through containerd's CRI plugin (the CRI tests' fixture: private containerd, CNI bridge, handler
/// `sandbox`): RunPodSandbox to the first app container running, against the bare-boot floor; and the host memory
/// (PSS) of one idle pod: shim, QEMU and vhost-device-vsock together; and the same per pod with ten idle pods at once.
/// </summary>
public sealed class PodBench(int rounds, ContainerdMatrix release)
{
    public async Task RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        // containerd 2.x: the same pods through the Sandbox API too (no pause container), round-robin with the first
        var modes = new List<PodMode>
        {
            new(new SandboxCriFixture(), "pause-container mode",
                "pod_start" + release.Suffix, "pod_start_over_floor" + release.Suffix, "pod_pss_mib" + release.Suffix),
        };
        if (!release.Label.StartsWith("1.", StringComparison.Ordinal))
            modes.Add(new PodMode(new SandboxApiCriFixture(), "Sandbox API mode (sandboxer = shim)",
                "pod_start_sandbox_api", "pod_start_sandbox_api_over_floor", "pod_pss_mib_sandbox_api"));
        try
        {
            foreach (var mode in modes)
                await mode.Fixture.InitializeAsync();
            var floors = new List<double>();
            var guestHeld = new List<double>();
            var guestNotFree = new List<double>();
            for (int round = 1; round <= rounds; round++)
            {
                floors.Add(await VmBootBench.FloorOnceAsync($"floor-pod{round}", cancellationToken));
                Console.WriteLine(FormattableString.Invariant($"round {round}/{rounds}: floor {floors[^1]:0.000} s"));
                foreach (var mode in modes)
                {
                    var clock = Stopwatch.StartNew();
                    var pod = await mode.Fixture.RunPodAsync($"bench{round}");
                    await mode.Fixture.StartContainerAsync(pod, "app", ["sleep", "600"]);
                    mode.Starts.Add(clock.Elapsed.TotalSeconds);
                    // let the pod settle to idle: the guest reports freed pages to the host 2 s after they are freed
                    await Task.Delay(IdleSettleTime, cancellationToken);
                    mode.Pss.Add(PodPssKiB(mode.Fixture, pod.Id) / 1024.0);
                    if (mode == modes[0])
                    {
                        var (held, notFree) = await GuestMemoryMiBAsync(mode.Fixture, pod);
                        guestHeld.Add(held);
                        guestNotFree.Add(notFree);
                    }
                    KeepConsoleLog(mode.Fixture, pod.Id, round);
                    await mode.Fixture.StopAndRemovePodAsync(pod);
                    Console.WriteLine(FormattableString.Invariant(
                        $"round {round}/{rounds}, {mode.Description}: RunPodSandbox to first container running {mode.Starts[^1]:0.000} s, idle pod PSS {mode.Pss[^1]:0.0} MiB"));
                }
            }
            string on = $"containerd {release.Label}";
            report.Add("pod_guest_held_mib" + release.Suffix, BenchReport.Median(guestHeld), "MiB",
                $"{on}: guest RAM the host holds for an idle pod (PSS of QEMU's memory backend)");
            report.Add("pod_guest_not_free_mib" + release.Suffix, BenchReport.Median(guestNotFree), "MiB",
                $"{on}: guest RAM not free in the guest (its size - MemFree); held <= this: every free page has gone back to the host");
            double tenPodsMiB = await TenIdlePodsPssPerPodMiBAsync(modes[0].Fixture, cancellationToken);
            report.Add("pod_pss_mib_10" + release.Suffix, tenPodsMiB, "MiB",
                $"{on}, {modes[0].Description}: host PSS per pod with {TenPods} idle pods running at once (shared pages divided among them)");
            double tenWarmPodsMiB;
            await using (await modes[0].Fixture.UseTemplatesAsync())
                tenWarmPodsMiB = await TenIdlePodsPssPerPodMiBAsync(modes[0].Fixture, cancellationToken);
            report.Add("pod_pss_mib_10_warm" + release.Suffix, tenWarmPodsMiB, "MiB",
                $"{on}, {modes[0].Description}: the same ten idle pods started from a template ([hypervisor.qemu] template = true; the first builds it) (target <= 100)");
            report.Add("pod_pss_warm_over_cold" + release.Suffix, tenWarmPodsMiB / tenPodsMiB, "ratio", $"{on}: pod_pss_mib_10_warm / pod_pss_mib_10");
            double floorSeconds = BenchReport.Median(floors);
            foreach (var mode in modes)
            {
                double startMedian = BenchReport.Median(mode.Starts);
                report.Add(mode.StartFigure, startMedian, "s", $"{on}, {mode.Description}: CRI RunPodSandbox to the first container running (median of {rounds})");
                report.Add(mode.RatioFigure, startMedian / floorSeconds, "ratio", $"{on}, {mode.Description}: pod start / the floor booted in the same rounds ({floorSeconds:0.000} s) (target <= 2)");
                report.Add(mode.PssFigure, BenchReport.Median(mode.Pss), "MiB", $"{on}, {mode.Description}: host PSS of one idle pod: shim + QEMU + vsock daemon (target <= 150)");
            }
        }
        finally
        {
            foreach (var mode in modes)
                await mode.Fixture.DisposeAsync();
        }
    }

    /// <summary>Guest RAM the host holds for <paramref name="pod"/> (PSS of QEMU's memory-backend mapping) and what
    /// of it the guest does not have free (the mapping's size minus MemFree of the guest's /proc/meminfo, read in the
    /// pod's app container: the kernel image and page map count as not free), in MiB.</summary>
    private static async Task<(double Held, double NotFree)> GuestMemoryMiBAsync(CriFixture fixture, TestPod pod)
    {
        int qemu = LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, pod.Id)).Select(p => p.Pid)
            .First(pid => ProcessName(pid).StartsWith("qemu", StringComparison.Ordinal));
        var (heldKiB, sizeKiB) = ProcessMemory.MappingKiB(qemu, "memory-backend");
        var meminfo = await fixture.ExecAsync(pod, "app", "cat", "/proc/meminfo");
        long memFreeKiB = long.Parse(meminfo.Stdout.Split('\n').First(l => l.StartsWith("MemFree:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return (heldKiB / 1024.0, (sizeKiB - memFreeKiB) / 1024.0);
    }

    private const int TenPods = 10;

    /// <summary>How long a pod runs before its memory is read: the guest's free page reporting hands freed pages back
    /// 2 s after they are freed (PAGE_REPORTING_DELAY), in batches.</summary>
    private static readonly TimeSpan IdleSettleTime = TimeSpan.FromSeconds(5);

    /// <summary>Starts <see cref="TenPods"/> pods with one idle container each, lets them settle, and returns the PSS
    /// of all their VM processes and shims together divided by their number; then removes them.</summary>
    private static async Task<double> TenIdlePodsPssPerPodMiBAsync(CriFixture fixture, CancellationToken cancellationToken)
    {
        var pods = new List<TestPod>();
        try
        {
            for (int i = 0; i < TenPods; i++)
            {
                var pod = await fixture.RunPodAsync($"idle{i}");
                pods.Add(pod);
                await fixture.StartContainerAsync(pod, "app", ["sleep", "600"]);
            }
            await Task.Delay(IdleSettleTime, cancellationToken); // let the pods settle to idle
            var vmProcesses = pods.SelectMany(pod => LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, pod.Id)).Select(p => p.Pid));
            long totalKiB = vmProcesses.Concat(fixture.Containerd.LeftoverShimProcesses()).Distinct().Sum(ProcessMemory.PssKiB);
            double perPod = totalKiB / 1024.0 / TenPods;
            Console.WriteLine(FormattableString.Invariant($"{TenPods} idle pods: {totalKiB / 1024.0:0} MiB PSS together, {perPod:0.0} MiB per pod"));
            return perPod;
        }
        finally
        {
            foreach (var pod in pods)
                await fixture.StopAndRemovePodAsync(pod);
        }
    }

    /// <summary>One way of starting pods, the names of its figures and its measurements.</summary>
    private sealed record PodMode(CriFixture Fixture, string Description, string StartFigure, string RatioFigure, string PssFigure)
    {
        public List<double> Starts { get; } = new();

        public List<double> Pss { get; } = new();
    }

    /// <summary>
    /// With SANDBOX_E2E_LOG_DIR set (where the fixture keeps containerd's log, shim lines included), the pod's guest
    /// console (the agent's log: each RPC's and crun/modprobe child's duration) is kept there too, as
    /// pod-ROUND-console.log, before the pod's state directory goes away.
    /// </summary>
    private static void KeepConsoleLog(CriFixture fixture, string podId, int round)
    {
        if (Environment.GetEnvironmentVariable("SANDBOX_E2E_LOG_DIR") is not { Length: > 0 } logDirectory)
            return;
        string console = Path.Combine(fixture.StateRoot, podId, "console.log");
        if (!File.Exists(console))
        {
            Console.WriteLine($"round {round}: no guest console log at {console}");
            return;
        }
        Directory.CreateDirectory(logDirectory);
        File.Copy(console, Path.Combine(logDirectory, $"pod-{round}-console.log"), overwrite: true);
    }

    /// <summary>PSS of the pod's VM processes (found by their state directory) and of the shim that serves it.</summary>
    private static long PodPssKiB(CriFixture fixture, string podId)
    {
        var vmProcesses = LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, podId)).Select(p => p.Pid).ToList();
        var shims = fixture.Containerd.LeftoverShimProcesses();
        if (!vmProcesses.Any() || shims.Count == 0)
            throw new InvalidOperationException($"pod {podId}: expected QEMU, the vsock daemon and a shim; found VM pids [{string.Join(", ", vmProcesses)}], shims [{string.Join(", ", shims)}]");
        var byProcess = vmProcesses.Concat(shims).Distinct().Select(pid => (Pid: pid, KiB: ProcessMemory.PssKiB(pid))).ToList();
        Console.WriteLine("idle pod PSS by process: " + string.Join(", ", byProcess.Select(p =>
            FormattableString.Invariant($"{ProcessName(p.Pid)} {p.KiB / 1024.0:0.0} MiB"))));
        return byProcess.Sum(p => p.KiB);
    }

    private static string ProcessName(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return $"pid {pid}";
        }
    }
}
