namespace Sandbox.Fuzzing;

/// <summary>
/// A bounded, seeded fuzz run: at most <c>iterations</c> inputs and at most <c>budget</c> of wall time, each input
/// drawn from <c>new Random(Hash(seed, iteration))</c> so that any failure replays alone from the seed and iteration it
/// prints. The seed is $SANDBOX_FUZZ_SEED, else 1 (make test stays reproducible; other seeds explore further), and
/// $SANDBOX_FUZZ_SCALE multiplies the iteration count (e.g. 20 for a long run by hand).
/// </summary>
public sealed class FuzzRun(string name, int iterations, TimeSpan budget)
{
    public const string SeedVariable = "SANDBOX_FUZZ_SEED";
    public const string ScaleVariable = "SANDBOX_FUZZ_SCALE";
    public const string IterationVariable = "SANDBOX_FUZZ_ITERATION";

    public int Seed { get; } = Environment.GetEnvironmentVariable(SeedVariable) is { } text && int.TryParse(text, out int seed) ? seed : 1;

    public int Iterations { get; } = iterations * (Environment.GetEnvironmentVariable(ScaleVariable) is { } scale && int.TryParse(scale, out int factor) && factor > 0 ? factor : 1);

    /// <summary>How many inputs the last run tried (fewer than <see cref="Iterations"/> when the time budget ran out).</summary>
    public int Completed { get; private set; }

    /// <summary>The random source of one iteration (the same for the same seed and iteration, whatever ran before).</summary>
    public static Random RandomFor(int seed, int iteration) => new(unchecked(seed * 1_000_003 + iteration * 7919));

    /// <summary>
    /// Runs <paramref name="body"/> on each input until the count or the time budget is spent. A failure is rethrown with
    /// the fuzzer's name, the seed, the iteration and the input the body described (<see cref="FuzzCase.Input"/>).
    /// $SANDBOX_FUZZ_ITERATION runs that one iteration alone.
    /// </summary>
    public async Task RunAsync(Func<FuzzCase, Task> body)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        IEnumerable<int> order = Environment.GetEnvironmentVariable(IterationVariable) is { } only && int.TryParse(only, out int single)
            ? [single]
            : Enumerable.Range(0, Iterations);
        Completed = 0;
        foreach (int iteration in order)
        {
            if (clock.Elapsed > budget)
                break;
            var fuzzCase = new FuzzCase(iteration, RandomFor(Seed, iteration));
            try
            {
                await body(fuzzCase);
            }
            catch (Exception e)
            {
                throw new FuzzFailureException(
                    $"fuzz {name}: iteration {iteration} of seed {Seed} failed (replay: {SeedVariable}={Seed} {IterationVariable}={iteration})\n" +
                    $"input: {Shorten(fuzzCase.Input)}\n{e.GetType().Name}: {e.Message}", e);
            }
            Completed++;
        }
    }

    private static string Shorten(string text) => text.Length <= 2000 ? text : text[..2000] + $"... ({text.Length} characters)";
}

/// <summary>One input of a <see cref="FuzzRun"/>: its random source, and the description the body gives of it.</summary>
public sealed class FuzzCase(int iteration, Random random)
{
    public int Iteration { get; } = iteration;
    public Random Random { get; } = random;
    public string Input { get; set; } = "(not described)";
}

public sealed class FuzzFailureException(string message, Exception inner) : Exception(message, inner);
