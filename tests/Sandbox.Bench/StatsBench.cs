using System.Diagnostics;
using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// What the kubelet's stats loop costs (cAdvisor/CRI stats every 10-15 s, the metrics server, the eviction manager):
/// one CRI ContainerStats on a running VM pod (containerd → shim → agent → the guest cgroup's files), and one
/// ListContainerStats over several VM pods (containerd asks each pod's shim in turn). Medians over every call of
/// every round.
/// </summary>
public sealed class StatsBench(int rounds, ContainerdMatrix release)
{
    private const int Pods = 4;
    private const int CallsPerRound = 10;

    public async Task RunAsync(BenchReport report, CancellationToken cancellationToken)
    {
        var fixture = new SandboxCriFixture();
        try
        {
            await fixture.InitializeAsync();
            var pods = new List<TestPod>();
            for (int i = 0; i < Pods; i++)
            {
                var pod = await fixture.RunPodAsync($"stats{i}");
                await fixture.StartContainerAsync(pod, "app", ["sleep", "600"]);
                pods.Add(pod);
            }
            var single = new List<double>();
            var list = new List<double>();
            for (int round = 1; round <= rounds; round++)
            {
                for (int call = 0; call < CallsPerRound; call++)
                {
                    var clock = Stopwatch.StartNew();
                    await fixture.Cri.Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = pods[call % Pods].ContainerId("app") },
                        cancellationToken: cancellationToken);
                    single.Add(clock.Elapsed.TotalMilliseconds);
                    clock.Restart();
                    var all = await fixture.Cri.Runtime.ListContainerStatsAsync(new ListContainerStatsRequest(), cancellationToken: cancellationToken);
                    list.Add(clock.Elapsed.TotalMilliseconds);
                    if (all.Stats.Count < Pods)
                        throw new InvalidOperationException($"ListContainerStats returned {all.Stats.Count} containers; {Pods} VM pods run");
                }
                Console.WriteLine(FormattableString.Invariant(
                    $"round {round}/{rounds}: ContainerStats median so far {BenchReport.Median(single):0.0} ms, ListContainerStats over {Pods} VM pods {BenchReport.Median(list):0.0} ms"));
            }
            string on = $"containerd {release.Label}";
            report.Add("stats_latency_ms" + release.Suffix, BenchReport.Median(single), "ms",
                $"{on}: one CRI ContainerStats on a running VM pod (median of {single.Count}) (target <= 50 under TCG)");
            report.Add("list_stats_latency_ms" + release.Suffix, BenchReport.Median(list), "ms",
                $"{on}: one CRI ListContainerStats over {Pods} running VM pods (median of {list.Count}); a 20-pod node takes about 5 times this");
            foreach (var pod in pods)
                await fixture.StopAndRemovePodAsync(pod);
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }
}
