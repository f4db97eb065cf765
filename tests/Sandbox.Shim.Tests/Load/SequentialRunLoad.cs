using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests.Load;

/// <summary>
/// Issue 15's sequential load: N container lives in a row on one private containerd (`ctr run -d` of a sleeping
/// container, then SIGKILL, `task rm`, `container rm`), sampling after each the shim of that run (while it serves the
/// container) and containerd (once the run is removed). A leak in containerd's handling of our shim shows as a slope in
/// its resident memory, descriptors or threads; one in the shim as a drift between runs (each run has its own shim).
/// The first <see cref="Warmup"/> runs are left out of the slopes (caches, first-use allocations). The same lives
/// through runc on the same containerd are the yardstick: what containerd grows by with any runtime.
/// </summary>
public sealed class SequentialRunLoad(VmBackedContainerdFixture fixture, TextWriter log)
{
    public const int Warmup = 10;
    private PrivateContainerd Containerd => fixture.Containerd;

    public sealed record Sample(int Run, ProcessFigures Containerd, ProcessFigures? Shim, TimeSpan Duration);

    /// <param name="runtime">The runtime type: <see cref="VmBackedContainerdFixture.Runtime"/> (ours) or
    /// <see cref="VmBackedContainerdFixture.RuncRuntime"/> (the yardstick).</param>
    public async Task<IReadOnlyList<Sample>> RunAsync(int runs, string runtime, CancellationToken cancellationToken)
    {
        var samples = new List<Sample>();
        for (int run = 0; run < runs; run++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string id = $"load-{(runtime == VmBackedContainerdFixture.Runtime ? "vm" : "runc")}-{run}";
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await CtrOrThrowAsync(["run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", runtime, fixture.Image, id, "sleep", "1000"]);
            var shim = Containerd.LeftoverShimProcesses().Select(ProcessFigures.Of).FirstOrDefault(f => f is not null);
            await CtrOrThrowAsync(["task", "kill", "-s", "SIGKILL", id]);
            await Containerd.WaitUntilTaskStoppedOrGoneAsync(id, TimeSpan.FromSeconds(60));
            await CtrOrThrowAsync(["task", "rm", id]);
            await CtrOrThrowAsync(["container", "rm", id]);
            var containerd = ProcessFigures.Of(Containerd.Pid) ?? throw new InvalidOperationException("containerd exited");
            var sample = new Sample(run, containerd, shim, clock.Elapsed);
            samples.Add(sample);
            log.WriteLine($"run {run}: {clock.Elapsed.TotalSeconds:0.0} s; containerd {containerd.RssKiB} KiB, {containerd.Descriptors} fds, {containerd.Threads} threads; " +
                          (shim is null ? "shim not sampled" : $"shim {shim.RssKiB} KiB, {shim.Descriptors} fds, {shim.Threads} threads"));
        }
        return samples;
    }

    private async Task CtrOrThrowAsync(string[] arguments)
    {
        var result = await Containerd.CtrAsync(arguments, TimeSpan.FromSeconds(150));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"`ctr {string.Join(' ', arguments)}` failed: {result.Stderr.Trim()}");
    }

    /// <summary>The `bench:` lines of a run: slopes per run after the warm-up, and the shim's medians; named
    /// load_seq_* for our runtime, load_seq_runc_* for runc's.</summary>
    public static IEnumerable<string> Figures(IReadOnlyList<Sample> samples, string runtime, string suffix)
    {
        var steady = samples.Skip(Warmup).ToList();
        var shims = steady.Where(s => s.Shim is not null).Select(s => s.Shim!).ToList();
        string name = runtime == VmBackedContainerdFixture.Runtime ? "load_seq" : "load_seq_runc";
        yield return $"bench: {name}_runs{suffix} {samples.Count} count";
        yield return $"bench: {name}_containerd_rss_slope{suffix} {Slope.Of(steady.Select(s => (double)s.Containerd.RssKiB).ToList()):0.00} KiB/run";
        yield return $"bench: {name}_containerd_fd_slope{suffix} {Slope.Of(steady.Select(s => (double)s.Containerd.Descriptors).ToList()):0.000} fd/run";
        yield return $"bench: {name}_containerd_thread_slope{suffix} {Slope.Of(steady.Select(s => (double)s.Containerd.Threads).ToList()):0.000} thread/run";
        yield return $"bench: {name}_shim_rss_slope{suffix} {Slope.Of(shims.Select(s => (double)s.RssKiB).ToList()):0.00} KiB/run";
        yield return $"bench: {name}_shim_fd_slope{suffix} {Slope.Of(shims.Select(s => (double)s.Descriptors).ToList()):0.000} fd/run";
        yield return $"bench: {name}_shim_rss_median{suffix} {Median(shims.Select(s => s.RssKiB / 1024.0)):0.0} MiB";
        yield return $"bench: {name}_run_median{suffix} {Median(samples.Select(s => s.Duration.TotalSeconds)):0.00} s";
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
