namespace Sandbox.Conformance;

/// <summary>A spec that runc passes and this runtime does not, with the exception that covers it (or null).</summary>
public sealed record Regression(SpecResult Here, ConformanceException? Exception);

/// <summary>
/// critest under runc (the reference) against critest under this runtime, on the same containerd:
/// <see cref="Regressions"/> (passes under runc, fails or is skipped here), <see cref="FailBoth"/> and
/// <see cref="PassHereOnly"/>. <see cref="Conformant"/> when every regression is a documented exception.
/// </summary>
public sealed class ConformanceComparison
{
    private ConformanceComparison(IReadOnlyList<Regression> regressions, IReadOnlyList<SpecResult> failBoth,
        IReadOnlyList<SpecResult> passHereOnly, IReadOnlyList<ConformanceException> unusedExceptions)
    {
        Regressions = regressions;
        FailBoth = failBoth;
        PassHereOnly = passHereOnly;
        UnusedExceptions = unusedExceptions;
    }

    public IReadOnlyList<Regression> Regressions { get; }

    public IReadOnlyList<SpecResult> FailBoth { get; }

    public IReadOnlyList<SpecResult> PassHereOnly { get; }

    /// <summary>Exceptions no regression needed in this run (runc failed that spec too, or this runtime passes it now).</summary>
    public IReadOnlyList<ConformanceException> UnusedExceptions { get; }

    public IEnumerable<Regression> Unexcused => Regressions.Where(r => r.Exception is null);

    public bool Conformant => !Unexcused.Any();

    public static ConformanceComparison Compare(IReadOnlyList<SpecResult> reference, IReadOnlyList<SpecResult> here,
        IReadOnlyList<ConformanceException> exceptions)
    {
        var hereByName = here.GroupBy(s => s.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        var regressions = new List<Regression>();
        var failBoth = new List<SpecResult>();
        foreach (var spec in reference)
        {
            var mine = hereByName.GetValueOrDefault(spec.Name) ?? new SpecResult(spec.Name, SpecOutcome.Skipped, "not run with this runtime's handler");
            if (spec.Outcome == SpecOutcome.Passed && mine.Outcome != SpecOutcome.Passed)
                regressions.Add(new Regression(mine, exceptions.FirstOrDefault(e => e.Matches(spec.Name))));
            else if (spec.Outcome == SpecOutcome.Failed && mine.Outcome == SpecOutcome.Failed)
                failBoth.Add(mine);
        }
        var referenceByName = reference.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var passHereOnly = here.Where(s => s.Outcome == SpecOutcome.Passed
            && (!referenceByName.Contains(s.Name) || reference.Any(r => r.Name == s.Name && r.Outcome != SpecOutcome.Passed))).ToList();
        var used = regressions.Where(r => r.Exception is not null).Select(r => r.Exception!).ToHashSet();
        return new ConformanceComparison(regressions, failBoth, passHereOnly, exceptions.Where(e => !used.Contains(e)).ToList());
    }
}
