using System.Diagnostics;
using System.Text;

namespace Sandbox.Shim.Tests.Containerd;

/// <summary>The outcome of an external command.</summary>
public sealed record CommandResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"`{Command}` exited {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Runs an external program with a timeout, capturing its output (killed when the timeout passes).</summary>
public static class ExternalCommand
{
    /// <summary>
    /// <paramref name="beforeReadingStdout"/>, when given, runs before the program's stdout is read at all: a slow
    /// reader, whose pipe fills up and blocks the program's writes meanwhile.
    /// </summary>
    public static async Task<CommandResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null, string? stdin = null, Func<Task>? beforeReadingStdout = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
            startInfo.ArgumentList.Add(argument);
        if (environment is not null)
        {
            foreach (var pair in environment)
                startInfo.Environment[pair.Key] = pair.Value;
        }
        string commandLine = fileName + " " + string.Join(' ', startInfo.ArgumentList);

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"cannot start {commandLine}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var readOut = PumpAsync(process.StandardOutput, stdout, beforeReadingStdout);
        var readErr = PumpAsync(process.StandardError, stderr, null);
        if (stdin is not null)
            await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();

        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            await Task.WhenAll(readOut, readErr);
            throw new TimeoutException($"`{commandLine}` did not finish within {timeout.TotalSeconds} s\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        }
        await Task.WhenAll(readOut, readErr);
        return new CommandResult(commandLine, process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    private static async Task PumpAsync(StreamReader reader, StringBuilder into, Func<Task>? beforeReading)
    {
        if (beforeReading is not null)
            await beforeReading();
        var buffer = new char[4096];
        int n;
        while ((n = await reader.ReadAsync(buffer)) > 0)
        {
            lock (into)
                into.Append(buffer, 0, n);
        }
    }
}
