using Sandbox.Bench;

// Round-robin runs (one of each measurement, then the next round) so that background load on a shared machine falls
// on every measurement alike; medians; ratios against the floor measured in this same run.
int rounds = args.Length > 0 && int.TryParse(args[0], out var r) ? r : 5;
var report = new BenchReport();
await new VmBootBench(rounds).RunAsync(report, CancellationToken.None);
report.Print();
