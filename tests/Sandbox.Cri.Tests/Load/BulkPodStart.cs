using System.Diagnostics;
using System.Text.RegularExpressions;
using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Fixture;

namespace Sandbox.Cri.Tests.Load;

/// <summary>
/// Issue 15's bulk start: N pods asked for at once, as a kubelet does when a deployment scales up on a fresh node. Each
/// pod gets RunPodSandbox and a sleeping container, all concurrently; then every pod must be READY with its container
/// RUNNING in a VM of its own (distinct guest boot ids), and after StopPodSandbox + RemovePodSandbox of all of them at
/// once, nothing of any pod may be left. A pod that fails is recorded, not thrown, so that the others are still
/// checked and removed.
/// </summary>
public sealed class BulkPodStart(CriFixture fixture, Action<string> log)
{
    public sealed record Outcome(int Pods, TimeSpan AllRunning, TimeSpan AllRemoved, IReadOnlyList<TimeSpan> PodStarts,
        IReadOnlyList<string> Failures, IReadOnlyList<string> Leftovers)
    {
        /// <summary>How each pod's VM started ("booted" or "cloned", from its sandbox.json).</summary>
        public IReadOnlyList<string> Starts { get; init; } = [];

        public TimeSpan MedianPodStart => PodStarts.Count == 0 ? TimeSpan.Zero : PodStarts.Order().ElementAt(PodStarts.Count / 2);

        /// <summary>The `bench:` lines of the run.</summary>
        public IEnumerable<string> Figures(string suffix)
        {
            yield return $"bench: load_pods{suffix} {Pods} count";
            yield return $"bench: load_pods_all_running{suffix} {AllRunning.TotalSeconds:0.0} s";
            yield return $"bench: load_pods_median_start{suffix} {MedianPodStart.TotalSeconds:0.0} s";
            yield return $"bench: load_pods_all_removed{suffix} {AllRemoved.TotalSeconds:0.0} s";
            yield return $"bench: load_pods_failed{suffix} {Failures.Count} count";
            yield return $"bench: load_pods_leftovers{suffix} {Leftovers.Count} count";
        }
    }

    /// <param name="handlerOf">The runtime handler of pod i (null: the fixture's own for every pod).</param>
    public async Task<Outcome> RunAsync(int count, Func<int, string>? handlerOf = null)
    {
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        var starts = await Task.WhenAll(Enumerable.Range(0, count).Select(i => StartPodAsync($"bulk-{i}", handlerOf?.Invoke(i), failures)));
        var allRunning = clock.Elapsed;
        var pods = starts.Where(s => s.Pod is not null).Select(s => s.Pod!).ToList();
        log($"{pods.Count} of {count} pods started in {allRunning.TotalSeconds:0.0} s");

        var bootIds = new Dictionary<string, string>(StringComparer.Ordinal);
        var startModes = new List<string>();
        foreach (var pod in pods)
        {
            try
            {
                var metadata = Sandbox.Runtime.Sandboxes.SandboxMetadata.TryRead(Path.Combine(fixture.StateRoot, pod.Id, "sandbox.json"));
                startModes.Add(metadata?.Start?.StartsWith("cloned", StringComparison.Ordinal) == true ? "cloned" : "booted");
                var status = await fixture.PodStatusAsync(pod);
                if (status.Status.State != PodSandboxState.SandboxReady)
                    failures.Add($"{pod} is {status.Status.State}, not READY");
                var container = await fixture.ContainerStatusAsync(pod, "main");
                if (container.State != ContainerState.ContainerRunning)
                    failures.Add($"{pod}/main is {container.State} (exit {container.ExitCode}, {container.Reason}), not RUNNING");
                var bootId = await fixture.ExecAsync(pod, "main", "cat", "/proc/sys/kernel/random/boot_id");
                if (bootId.ExitCode != 0)
                    failures.Add($"{pod}: {bootId}");
                else if (bootIds.TryGetValue(bootId.Stdout.Trim(), out var other))
                    failures.Add($"{pod} runs in the same VM (boot id {bootId.Stdout.Trim()}) as {other}");
                else
                    bootIds[bootId.Stdout.Trim()] = pod.ToString();
            }
            catch (Exception e)
            {
                failures.Add($"{pod}: {e.Message}");
            }
        }

        clock.Restart();
        await Task.WhenAll(pods.Select(async pod =>
        {
            try
            {
                await fixture.StopAndRemovePodAsync(pod);
            }
            catch (Exception e)
            {
                lock (failures)
                    failures.Add($"removing {pod}: {e.Message}");
            }
        }));
        var allRemoved = clock.Elapsed;
        var leftovers = new List<string>();
        foreach (var pod in pods)
            leftovers.AddRange((await PodLeftovers.WaitUntilGoneAsync(fixture, pod)).Select(l => $"{pod}: {l}"));
        log($"{pods.Count} pods removed in {allRemoved.TotalSeconds:0.0} s; {leftovers.Count} leftovers");
        return new Outcome(count, allRunning, allRemoved, starts.Where(s => s.Pod is not null).Select(s => s.Took).ToList(), failures, leftovers)
        {
            Starts = startModes,
        };
    }

    private async Task<(TestPod? Pod, TimeSpan Took)> StartPodAsync(string name, string? handler, List<string> failures)
    {
        var clock = Stopwatch.StartNew();
        TestPod? pod = null;
        try
        {
            pod = await fixture.RunPodAsync(name, null, false, NamespaceMode.Pod, handler);
            var ready = clock.Elapsed;
            await fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
            log($"{pod}: READY after {ready.TotalSeconds:0.0} s, its container running after {clock.Elapsed.TotalSeconds:0.0} s");
            return (pod, clock.Elapsed);
        }
        catch (Exception e)
        {
            string failure = $"starting pod {name} failed after {clock.Elapsed.TotalSeconds:0.0} s: {e.Message}" +
                             await GuestConsoleTailAsync(e.Message);
            lock (failures)
                failures.Add(failure);
            return (pod, clock.Elapsed); // a pod that exists is still removed and checked
        }
    }

    /// <summary>The end of the failed sandbox's guest console, from the post-mortem record its shim writes as it stops
    /// the VM (the state directory is gone by then), so that a CI log says what the guest was doing. The sandbox id is
    /// the one containerd's error names.</summary>
    private async Task<string> GuestConsoleTailAsync(string error)
    {
        string id = Regex.Match(error, "sandbox \"([0-9a-f]{64})\"").Groups[1].Value;
        if (id.Length == 0)
            return "";
        var store = new Sandbox.Runtime.PostMortem.PostMortemStore(fixture.StateRoot);
        for (int attempt = 0; attempt < 50; attempt++)
        {
            if (store.Read(id) is { } record)
                return $"\n    guest console of sandbox {id[..12]} (its post-mortem record):\n      " + string.Join("\n      ", record.ConsoleTail.TakeLast(15));
            await Task.Delay(100);
        }
        return $"\n    (no post-mortem record of sandbox {id[..12]} under {fixture.StateRoot})";
    }
}
