using System.Diagnostics;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Hypervisors.Processes;

namespace Sandbox.Bench;

/// <summary>
/// Kubernetes pods through containerd's CRI plugin (the CRI tests' fixture: private containerd, CNI bridge, handler
/// `sandbox`): RunPodSandbox to the first app container running, against the bare-boot floor; and the host memory
/// (PSS) of one idle pod: shim, QEMU and vhost-device-vsock together.
/// </summary>
public sealed class PodBench(int rounds, ContainerdMatrix release)
{
    public async Task RunAsync(BenchReport report, double floorSeconds, CancellationToken cancellationToken)
    {
        var fixture = new SandboxCriFixture();
        await fixture.InitializeAsync();
        try
        {
            var starts = new List<double>();
            var pss = new List<double>();
            for (int round = 1; round <= rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                var pod = await fixture.RunPodAsync($"bench{round}");
                await fixture.StartContainerAsync(pod, "app", ["sleep", "600"]);
                starts.Add(clock.Elapsed.TotalSeconds);
                await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken); // let the pod settle to idle
                pss.Add(PodPssKiB(fixture, pod.Id) / 1024.0);
                KeepConsoleLog(fixture, pod.Id, round);
                await fixture.StopAndRemovePodAsync(pod);
                Console.WriteLine(FormattableString.Invariant(
                    $"round {round}/{rounds}: RunPodSandbox to first container running {starts[^1]:0.000} s, idle pod PSS {pss[^1]:0.0} MiB"));
            }
            double startMedian = BenchReport.Median(starts);
            string on = $"containerd {release.Label}";
            report.Add("pod_start" + release.Suffix, startMedian, "s", $"{on}: CRI RunPodSandbox to the first container running (median of {rounds})");
            report.Add("pod_start_over_floor" + release.Suffix, startMedian / floorSeconds, "ratio", $"{on}: pod_start / vm_boot_floor (target <= 2)");
            report.Add("pod_pss_mib" + release.Suffix, BenchReport.Median(pss), "MiB", $"{on}: host PSS of one idle pod: shim + QEMU + vsock daemon (target <= 84)");
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }

    /// <summary>
    /// With SANDBOX_E2E_LOG_DIR set (where the fixture keeps containerd's log, shim lines included), the pod's guest
    /// console (the agent's log: each RPC's and crun/modprobe child's duration) is kept there too, as
    /// pod-ROUND-console.log, before the pod's state directory goes away.
    /// </summary>
    private static void KeepConsoleLog(SandboxCriFixture fixture, string podId, int round)
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
    private static long PodPssKiB(SandboxCriFixture fixture, string podId)
    {
        var vmProcesses = LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, podId)).Select(p => p.Pid).ToList();
        var shims = fixture.Containerd.LeftoverShimProcesses();
        if (!vmProcesses.Any() || shims.Count == 0)
            throw new InvalidOperationException($"pod {podId}: expected QEMU, the vsock daemon and a shim; found VM pids [{string.Join(", ", vmProcesses)}], shims [{string.Join(", ", shims)}]");
        return vmProcesses.Concat(shims).Distinct().Sum(ProcessMemory.PssKiB);
    }
}
