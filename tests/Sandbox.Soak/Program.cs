using Sandbox.Shim.Tests;
using Sandbox.Shim.Tests.Containerd;
using Sandbox.Shim.Tests.Load;
using Sandbox.Shim.Tests.Soak;

// `make soak`: SoakRunner's cycles (a fault at a random moment of a container's life, then nothing left, no exit lost,
// nothing hung) on each containerd release of the matrix (SANDBOX_CONTAINERD_MATRIX, default "1.6 2": the oldest and
// the newest). Prints each cycle, then per release "soak: cycles N leaks 0 lost_exits 0 hung 0" and the figures as
// "bench:"-style lines. Exit code 1 when any cycle was not clean.
// Usage: Sandbox.Soak [cycles] [seed] [first cycle]   (default: 100 cycles from 0, a seed from the clock, printed so
// that a run replays; `Sandbox.Soak 1 42 13` replays cycle 13 of seed 42 alone; `Sandbox.Soak plan 30 42` lists the
// fault and moment of each cycle without running any)
if (args is ["load-seq", var runsText])
    return await SequentialLoadAsync(int.Parse(runsText));
if (args is ["plan", var planCycles, var planSeed])
{
    for (int cycle = 0; cycle < int.Parse(planCycles); cycle++)
        Console.WriteLine($"cycle {cycle}: {SoakRunner.Plan(int.Parse(planSeed), cycle)}");
    return 0;
}
int cycles = args.Length > 0 && int.TryParse(args[0], out int c) ? c : 100;
int seed = args.Length > 1 && int.TryParse(args[1], out int s) ? s : Environment.TickCount & 0xFFFF;
int first = args.Length > 2 && int.TryParse(args[2], out int f) ? f : 0;
if (Environment.GetEnvironmentVariable("SANDBOX_CONTAINERD_MATRIX") is null)
    Environment.SetEnvironmentVariable("SANDBOX_CONTAINERD_MATRIX", "1.6 2");

bool clean = true;
var lines = new List<string>();
foreach (var release in ContainerdMatrix.Load())
{
    using var onPath = release.Use();
    Console.WriteLine($"containerd {release.Label}: {release.PackageVersion}, {cycles} cycles, seed {seed}");
    var fixture = new VmBackedContainerdFixture { Configuration = SoakRunner.Configuration };
    await fixture.InitializeAsync();
    IReadOnlyList<SoakCycleResult> results;
    try
    {
        results = await new SoakRunner(fixture, Console.Out).RunAsync(cycles, seed, CancellationToken.None, first);
    }
    finally
    {
        await fixture.DisposeAsync();
    }
    var summary = SoakSummary.Of(results);
    clean &= results.All(r => r.Clean);
    lines.Add($"{summary} (containerd {release.Label}, seed {seed}, {summary.NotInjected} cycles whose fault found no target)");
    lines.Add($"bench: soak_leaks{release.Suffix} {summary.Leaks} count");
    lines.Add($"bench: soak_lost_exits{release.Suffix} {summary.LostExits} count");
    lines.Add($"bench: soak_hung{release.Suffix} {summary.Hung} count");
    lines.Add($"bench: soak_failed{release.Suffix} {summary.Failed} count");
    lines.Add($"bench: soak_sandboxctl_disagreements{release.Suffix} {summary.SandboxctlDisagreements} count");
    lines.Add($"bench: soak_cycle_median{release.Suffix} {Median(results.Select(r => r.Duration.TotalSeconds)):0.0} s");
    foreach (var fault in Enum.GetValues<SoakFault>())
        lines.Add($"  {fault,-18} {results.Count(r => r.Fault == fault && r.Injected),4} cycles");
}
lines.ForEach(Console.WriteLine);
return clean ? 0 : 1;

// `make load`: SequentialRunLoad (runc, then ours) on each release of the matrix; its bench: lines, and whether anything
// was left.
static async Task<int> SequentialLoadAsync(int runs)
{
    if (Environment.GetEnvironmentVariable("SANDBOX_CONTAINERD_MATRIX") is null)
        Environment.SetEnvironmentVariable("SANDBOX_CONTAINERD_MATRIX", "1.6 2");
    var lines = new List<string>();
    bool clean = true;
    foreach (var release in ContainerdMatrix.Load())
    {
        using var onPath = release.Use();
        Console.WriteLine($"containerd {release.Label}: {release.PackageVersion}, {runs} sequential runs");
        var fixture = new VmBackedContainerdFixture();
        await fixture.InitializeAsync();
        try
        {
            // runc first (the yardstick: what this containerd grows by with any runtime), then ours, on the same containerd
            foreach (var runtime in new[] { VmBackedContainerdFixture.RuncRuntime, VmBackedContainerdFixture.Runtime })
            {
                try
                {
                    var samples = await new SequentialRunLoad(fixture, Console.Out).RunAsync(runs, runtime, CancellationToken.None);
                    lines.AddRange(SequentialRunLoad.Figures(samples, runtime, release.Suffix));
                }
                catch (InvalidOperationException e) when (runtime == VmBackedContainerdFixture.RuncRuntime)
                {
                    // the yardstick is context, not the subject: its failure is reported, ours still runs
                    lines.Add($"load: containerd {release.Label}: the runc yardstick failed: {e.Message}");
                    clean = false;
                }
            }
            var left = fixture.Containerd.LeftoverShimProcesses().Select(p => $"shim process {p}")
                .Concat(fixture.Containerd.LeftoverMounts().Select(m => $"mount {m}")).ToList();
            lines.Add($"load: containerd {release.Label}: {runs} runs, left behind: {(left.Count == 0 ? "nothing" : string.Join(", ", left))}");
            clean &= left.Count == 0;
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }
    lines.ForEach(Console.WriteLine);
    return clean ? 0 : 1;
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}
