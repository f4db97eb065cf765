using Sandbox.Bench;

// Round-robin runs (one of each measurement, then the next round) so that background load on a shared machine falls
// on every measurement alike; medians; ratios against the floor measured in this same run.
// Usage: Sandbox.Bench [rounds] [vm|ctr|pod ...]   (default: 5 rounds, every bench)
int rounds = args.Length > 0 && int.TryParse(args[0], out var r) ? r : 5;
var only = args.Skip(1).ToHashSet();
bool Selected(string name) => only.Count == 0 || only.Contains(name);

var report = new BenchReport();
double floor = await new VmBootBench(rounds).RunAsync(report, CancellationToken.None);
if (Selected("ctr"))
    await new CtrRunBench(rounds).RunAsync(report, floor, CancellationToken.None);
if (Selected("pod"))
    await new PodBench(rounds).RunAsync(report, floor, CancellationToken.None);
report.Print();
