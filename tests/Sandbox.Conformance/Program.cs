using Sandbox.Conformance;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Shim.Tests.Containerd;

// `make conformance` (tests/run-conformance.sh runs this once per containerd release, with that release first on PATH):
// critest with runc, then with this runtime's handler, on one private containerd; prints the three lists and exits 1
// when a spec that runc passes fails here without a documented exception (conformance-exceptions.toml).
//
//   dotnet run --project tests/Sandbox.Conformance -- [--output DIR] [--focus REGEX] [--handler sandbox|sandbox-api]
var options = ConformanceOptions.Parse(args);
string checkout = ConformanceOptions.FindCheckout();
string output = Directory.CreateDirectory(options.Output ?? Path.Combine(checkout, "build", "conformance", "current")).FullName;
using var cancellation = new CancellationTokenSource(TimeSpan.FromMinutes(80));

string critest = await CritestBinary.LocateAsync(checkout, cancellation.Token);
var exceptionsPath = Path.Combine(AppContext.BaseDirectory, "conformance-exceptions.toml");
var exceptions = ConformanceExceptions.Parse(await File.ReadAllTextAsync(exceptionsPath), exceptionsPath);
var release = await ContainerdRelease.DetectAsync();
Console.WriteLine($"conformance: critest {critest} on containerd {release.Text}, handlers {CriFixture.RuncHandler} (reference) and {options.Handler}; output in {output}");

string scratch = Directory.CreateTempSubdirectory("sbx-conformance-").FullName;
var runStarted = DateTime.UtcNow;
int exitCode;
try
{
    await using var registry = await LocalRegistry.StartAsync(scratch, cancellation.Token);
    var fixture = new ConformanceCriFixture(registry.WriteHostsDirectory(Path.Combine(scratch, "hosts")));
    await fixture.InitializeAsync();
    IReadOnlyList<SpecResult> reference, here;
    string teardown = "";
    try
    {
        await ConformanceImages.PublishAsync(scratch, registry, fixture.Containerd, cancellation.Token);
        reference = await CritestRun.RunAsync(critest, fixture.Containerd.GrpcAddress, CriFixture.RuncHandler, registry.Host, output, options.Focus, TimeSpan.FromMinutes(20));
        here = await CritestRun.RunAsync(critest, fixture.Containerd.GrpcAddress, options.Handler, registry.Host, output, options.Focus, TimeSpan.FromMinutes(40));
    }
    finally
    {
        try
        {
            await fixture.DisposeAsync();
            CritestRun.RemoveItsTemporaryDirectories(runStarted);
        }
        catch (InvalidOperationException e)
        {
            // what critest's pods left behind (a shim still running, a socket): reported with the comparison, and a failure
            teardown = e.Message;
        }
    }
    var comparison = ConformanceComparison.Compare(reference, here, exceptions);
    var report = ConformanceReport.Write(release.Text, options.Handler, reference, here, comparison, teardown);
    Console.WriteLine(report);
    await File.WriteAllTextAsync(Path.Combine(output, "report.md"), report);
    exitCode = comparison.Conformant && teardown.Length == 0 ? 0 : 1;
}
catch (Exception e)
{
    Console.Error.WriteLine($"conformance run failed: {e}");
    exitCode = 2;
}
finally
{
    Directory.Delete(scratch, recursive: true);
}
return exitCode;
