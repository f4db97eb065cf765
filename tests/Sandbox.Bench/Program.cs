using Sandbox.Bench;
using Sandbox.Shim.Tests.Containerd;

// Round-robin runs (one of each measurement, then the next round) so that background load on a shared machine falls
// on every measurement alike; medians; ratios against the floor measured in this same run.
// The ctr and pod benches run once per containerd release of the test matrix (ContainerdMatrix), their figures named
// with its suffix (ctr_run_over_floor_c16, pod_start_over_floor_c2, ...); each boots the floor in its own rounds too,
// and its ratios are against that floor.
// The stdout bench (1 GiB per round) runs at most 3 rounds.
// The doctor bench runs once, on the first containerd release of the matrix.
// Usage: Sandbox.Bench [rounds] [vm|ctr|pod|stats|stdout|doctor ...]   (default: 5 rounds, every bench)
int rounds = args.Length > 0 && int.TryParse(args[0], out var r) ? r : 5;
var only = args.Skip(1).ToHashSet();
bool Selected(string name) => only.Count == 0 || only.Contains(name);

var report = new BenchReport();
await new VmBootBench(rounds).RunAsync(report, CancellationToken.None);
if (Selected("doctor"))
{
    using var onPath = ContainerdMatrix.Load().First().Use();
    await new DoctorBench(rounds).RunAsync(report, CancellationToken.None);
}
foreach (var release in ContainerdMatrix.Load())
{
    using var onPath = release.Use();
    Console.WriteLine($"containerd {release.Label}: {release.PackageVersion} ({release.BinDirectory})");
    if (Selected("ctr"))
        await new CtrRunBench(rounds, release).RunAsync(report, CancellationToken.None);
    if (Selected("pod"))
        await new PodBench(rounds, release).RunAsync(report, CancellationToken.None);
    if (Selected("stats"))
        await new StatsBench(rounds, release).RunAsync(report, CancellationToken.None);
    if (Selected("stdout"))
        await new StdoutBench(Math.Min(rounds, 3), release).RunAsync(report, CancellationToken.None);
}
report.Print();
