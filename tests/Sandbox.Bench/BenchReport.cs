namespace Sandbox.Bench;

/// <summary>Collects figures, prints a table for people and one `bench: NAME VALUE UNIT` line per figure for scripts.</summary>
public sealed class BenchReport
{
    private readonly List<(string Name, double Value, string Unit, string Description)> _figures = [];

    public void Add(string name, double value, string unit, string description) => _figures.Add((name, value, unit, description));

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
            throw new ArgumentException("no values to take the median of");
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    public void Print()
    {
        Console.WriteLine();
        Console.WriteLine($"{"figure",-28} {"value",12} {"unit",-6} description");
        foreach (var f in _figures)
            Console.WriteLine($"{f.Name,-28} {f.Value,12:0.###} {f.Unit,-6} {f.Description}");
        Console.WriteLine();
        foreach (var f in _figures)
            Console.WriteLine(FormattableString.Invariant($"bench: {f.Name} {f.Value:0.###} {f.Unit}"));
    }
}
