using System.Text;

namespace Sandbox.Conformance;

/// <summary>The three lists of a conformance run, for people, and one `conformance:` line for scripts.</summary>
public static class ConformanceReport
{
    /// <param name="teardown">What the private containerd's teardown found left behind after both runs ("" = nothing).</param>
    public static string Write(string containerd, string handler, IReadOnlyList<SpecResult> reference, IReadOnlyList<SpecResult> here,
        ConformanceComparison comparison, string teardown = "")
    {
        var text = new StringBuilder();
        text.AppendLine($"== critest on containerd {containerd}: runc {Counts(reference)}; {handler} {Counts(here)}");
        text.AppendLine();
        int excused = comparison.Regressions.Count(r => r.Exception is not null);
        text.AppendLine($"1. Passes under runc, fails here: {comparison.Regressions.Count} ({excused} documented exceptions, {comparison.Regressions.Count - excused} not)");
        foreach (var regression in comparison.Regressions.OrderBy(r => r.Exception is null ? 1 : 0).ThenBy(r => r.Here.Name, StringComparer.Ordinal))
        {
            if (regression.Exception is { } exception)
                text.AppendLine($"   - exception: {regression.Here.Name}\n       why: {exception.Why}\n       Kata: {exception.Kata}");
            else
                text.AppendLine($"   - FAILS: {regression.Here.Name}\n       {Outcome(regression.Here)}");
        }
        text.AppendLine($"2. Fails under both: {comparison.FailBoth.Count}");
        foreach (var spec in comparison.FailBoth.OrderBy(s => s.Name, StringComparer.Ordinal))
            text.AppendLine($"   - {spec.Name}\n       here: {spec.Failure}");
        text.AppendLine($"3. Passes here only: {comparison.PassHereOnly.Count}");
        foreach (var spec in comparison.PassHereOnly.OrderBy(s => s.Name, StringComparer.Ordinal))
            text.AppendLine($"   - {spec.Name}");
        if (comparison.UnusedExceptions.Count > 0)
        {
            text.AppendLine($"Exceptions this run did not need (runc fails the spec too, or it passes here): {comparison.UnusedExceptions.Count}");
            foreach (var exception in comparison.UnusedExceptions)
                text.AppendLine($"   - {exception.Spec}");
        }
        if (teardown.Length > 0)
            text.AppendLine($"Left behind after both runs (a failure):\n{teardown}");
        text.AppendLine();
        bool passed = comparison.Conformant && teardown.Length == 0;
        text.AppendLine($"conformance: containerd {containerd} runc {Counts(reference)} | {handler} {Counts(here)} | " +
                        $"not conformant: {comparison.Unexcused.Count()}{(teardown.Length > 0 ? ", leftovers" : "")} -> {(passed ? "PASS" : "FAIL")}");
        return text.ToString();
    }

    private static string Outcome(SpecResult spec) =>
        spec.Outcome == SpecOutcome.Skipped ? $"skipped here: {spec.Failure}" : $"here: {spec.Failure}";

    private static string Counts(IReadOnlyList<SpecResult> specs) =>
        $"{specs.Count(s => s.Outcome == SpecOutcome.Passed)} passed, {specs.Count(s => s.Outcome == SpecOutcome.Failed)} failed, " +
        $"{specs.Count(s => s.Outcome == SpecOutcome.Skipped)} skipped";
}
