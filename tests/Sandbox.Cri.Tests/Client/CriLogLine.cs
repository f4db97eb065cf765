using System.Globalization;
using System.Text.RegularExpressions;

namespace Sandbox.Cri.Tests.Client;

/// <summary>
/// One line of a CRI container log file: `&lt;RFC3339Nano time&gt; &lt;stdout|stderr&gt; &lt;F|P&gt; &lt;content&gt;`
/// (F = full line, P = partial line continued on the next one).
/// </summary>
public sealed partial record CriLogLine(DateTimeOffset Time, string Stream, string Tag, string Content)
{
    /// <summary>Null when the line is not in the CRI format.</summary>
    public static CriLogLine? TryParse(string line)
    {
        var match = Format().Match(line);
        if (!match.Success)
            return null;
        // .NET parses at most 7 fractional digits; RFC3339Nano has up to 9
        string fraction = match.Groups["fraction"].Value;
        string time = match.Groups["seconds"].Value + (fraction.Length > 0 ? "." + fraction[..Math.Min(7, fraction.Length)] : "") + match.Groups["zone"].Value;
        if (!DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
            return null;
        return new CriLogLine(parsed, match.Groups["stream"].Value, match.Groups["tag"].Value, match.Groups["content"].Value);
    }

    [GeneratedRegex(@"^(?<seconds>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?<fraction>\d{1,9}))?(?<zone>Z|[+-]\d{2}:\d{2}) (?<stream>stdout|stderr) (?<tag>[FP]) (?<content>.*)$")]
    private static partial Regex Format();
}
