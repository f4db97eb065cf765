using System.Diagnostics;
using System.Xml.Linq;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Conformance;

public enum SpecOutcome { Passed, Failed, Skipped }

/// <summary>One critest spec's outcome, and the first line of its failure.</summary>
public sealed record SpecResult(string Name, SpecOutcome Outcome, string Failure);

/// <summary>
/// One critest run against a CRI endpoint with one runtime handler: its console output and junit report are kept in
/// the output directory (critest-HANDLER.log, critest-HANDLER.xml), and the junit report is read into spec results.
/// </summary>
public static class CritestRun
{
    /// <summary>
    /// Specs that test containerd's image service (pulls, tags, image volumes), not the runtime, and need critest's own
    /// test images from real registries (digests pinned in critest): left out for every handler.
    /// </summary>
    public const string ImageServiceSpecs = @"\[k8s\.io\] (Image Manager|Image Consistency|Image Identifier Consistency|Image Volume)";

    public static async Task<IReadOnlyList<SpecResult>> RunAsync(string critest, string criSocket, string handler, string registryHost,
        string outputDirectory, string? focus, TimeSpan timeout)
    {
        string report = Path.Combine(outputDirectory, $"critest-{handler}.xml");
        string log = Path.Combine(outputDirectory, $"critest-{handler}.log");
        var arguments = new List<string>
        {
            $"-runtime-endpoint=unix://{criSocket}",
            $"-image-endpoint=unix://{criSocket}",
            $"-runtime-handler={handler}",
            $"-registry-prefix={registryHost}",
            $"--ginkgo.junit-report={report}",
            $"--ginkgo.skip={ImageServiceSpecs}",
            $"--ginkgo.timeout={(int)timeout.TotalMinutes}m",
            "--ginkgo.no-color",
        };
        if (focus is not null)
            arguments.Add($"--ginkgo.focus={focus}");
        File.Delete(report);
        var watch = Stopwatch.StartNew();
        CommandResult result;
        try
        {
            result = await ExternalCommand.RunAsync(critest, arguments, timeout + TimeSpan.FromMinutes(2));
        }
        catch (TimeoutException e)
        {
            await File.WriteAllTextAsync(log, e.Message);
            throw new TimeoutException($"critest with handler {handler} did not finish within {timeout.TotalMinutes + 2} min; its output is in {log}");
        }
        await File.WriteAllTextAsync(log, result.Stdout + result.Stderr);
        if (!File.Exists(report))
            throw new InvalidOperationException($"critest with handler {handler} exited with {result.ExitCode} and wrote no junit report; its output is in {log}:\n{Tail(result.Stdout + result.Stderr, 30)}");
        var specs = ReadJunitReport(await File.ReadAllTextAsync(report));
        Console.WriteLine($"critest with handler {handler}: {specs.Count(s => s.Outcome == SpecOutcome.Passed)} passed, " +
                          $"{specs.Count(s => s.Outcome == SpecOutcome.Failed)} failed, {specs.Count(s => s.Outcome == SpecOutcome.Skipped)} skipped " +
                          $"in {watch.Elapsed.TotalMinutes:F1} min (log: {log})");
        return specs;
    }

    /// <summary>
    /// Ginkgo's junit report: one testcase per spec, named "[It] ..." (suite nodes such as "[BeforeSuite]" are left
    /// out unless they failed); a failure or error child = failed, a skipped child = skipped.
    /// </summary>
    public static IReadOnlyList<SpecResult> ReadJunitReport(string xml)
    {
        var results = new List<SpecResult>();
        foreach (var testcase in XDocument.Parse(xml).Descendants("testcase"))
        {
            string name = (string?)testcase.Attribute("name") ?? "";
            var failure = testcase.Element("failure") ?? testcase.Element("error");
            SpecOutcome outcome = failure is not null ? SpecOutcome.Failed
                : testcase.Element("skipped") is not null ? SpecOutcome.Skipped
                : SpecOutcome.Passed;
            bool isSpec = name.StartsWith("[It] ", StringComparison.Ordinal);
            if (!isSpec && outcome != SpecOutcome.Failed)
                continue;
            string message = (string?)failure?.Attribute("message") ?? "";
            results.Add(new SpecResult(isSpec ? name["[It] ".Length..] : name, outcome, FirstLine(message)));
        }
        return results;
    }

    /// <summary>
    /// The host paths critest makes for its mount specs ($TMPDIR/test&lt;pod id&gt;...) and removes in their clean-up,
    /// which a failed clean-up leaves (the non-recursive read-only spec's, with this runtime: see its exception).
    /// Removes those made since <paramref name="since"/>, once the pods are gone and nothing is mounted there.
    /// </summary>
    public static void RemoveItsTemporaryDirectories(DateTime since)
    {
        foreach (var directory in new DirectoryInfo(Path.GetTempPath()).EnumerateDirectories("test*"))
        {
            bool critests = directory.Name.Length > 4 + 64 && directory.Name[4..68].All(char.IsAsciiHexDigitLower);
            if (!critests || directory.CreationTimeUtc < since || Sandbox.Cri.Tests.Fixture.CriFixture.MountPointsBelow(directory.FullName).Count > 0)
                continue;
            directory.Delete(recursive: true);
            Console.WriteLine($"removed critest's leftover host path {directory.FullName}");
        }
    }

    private static string FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
