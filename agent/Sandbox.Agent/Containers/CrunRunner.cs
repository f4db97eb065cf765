using System.Text;
using Sandbox.Agent.Native;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>What a crun command did: its exit status, its stdout, and its error text (log file, then stderr).</summary>
public sealed record CrunResult(int ExitStatus, string Stdout, string ErrorText)
{
    public bool Succeeded => ExitStatus == 0;
}

/// <summary>crun failed; the message carries crun's own error text.</summary>
public sealed class CrunFailedException(string message) : Exception(message);

/// <summary>Runs crun commands to completion as children of the agent, with a timeout.</summary>
public sealed class CrunRunner(CrunCommandLine commandLine, CrunBinary binary, string logDirectory, TimeSpan timeout)
{
    private long _logCounter;

    public CrunCommandLine CommandLine => commandLine;

    public string NewLogFile()
    {
        Directory.CreateDirectory(logDirectory);
        return Path.Combine(logDirectory, $"crun-{Interlocked.Increment(ref _logCounter)}.log");
    }

    /// <summary>
    /// Runs crun with <paramref name="args"/> (built with the log file <paramref name="logFile"/>). When
    /// <paramref name="stdio"/> is given, crun gets those fds as stdin/stdout/stderr (the container inherits them);
    /// otherwise stdin is /dev/null and stdout/stderr are captured.
    /// </summary>
    public async Task<CrunResult> RunAsync(List<string> args, string logFile, (int In, int Out, int Err)? stdio, CancellationToken cancellationToken)
    {
        int devNull = -1;
        OutputStream? stdout = null, stderr = null;
        int childOut = -1, childErr = -1;
        try
        {
            (int In, int Out, int Err) fds;
            if (stdio is { } given)
            {
                fds = given;
            }
            else
            {
                devNull = FileDescriptors.OpenDevNull();
                var (outR, outW) = FileDescriptors.CreatePipe();
                stdout = new OutputStream(outR);
                childOut = outW;
                var (errR, errW) = FileDescriptors.CreatePipe();
                stderr = new OutputStream(errR);
                childErr = errW;
                fds = (devNull, childOut, childErr);
            }

            long spawned = System.Diagnostics.Stopwatch.GetTimestamp();
            var (pid, exited) = ChildProcesses.Shared.Spawn(binary.ExecutablePath, args, fds.In, fds.Out, fds.Err);
            CloseFd(ref childOut);
            CloseFd(ref childErr);

            using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeoutSource.CancelAfter(timeout);
            Task<string> outText = stdout != null ? ReadAllAsync(stdout, timeoutSource.Token) : Task.FromResult("");
            Task<string> errText = stderr != null ? ReadAllAsync(stderr, timeoutSource.Token) : Task.FromResult("");
            ChildExit exit;
            try
            {
                exit = await WaitReportingStallAsync(pid, exited, args, timeoutSource.Token);
            }
            catch (OperationCanceledException)
            {
                string tree = ProcessTreeSnapshot.Describe(pid);
                ChildProcesses.Shared.Signal(pid, 9);
                await exited;
                bool cancelled = cancellationToken.IsCancellationRequested;
                AgentLog.Write($"crun {Summary(args)} killed after {AgentLog.Milliseconds(spawned)} " +
                               $"({(cancelled ? "its call was cancelled" : "timed out")}); it was at: {tree}");
                if (cancelled) throw;
                throw new CrunFailedException($"crun {Describe(args)} did not finish within {timeout.TotalSeconds:F0} s and was killed; it was at: {tree}");
            }
            AgentLog.Write($"crun {Summary(args)}: {(exit.ExitStatus == 0 ? "" : $"exit status {exit.ExitStatus} after ")}{AgentLog.Milliseconds(spawned)}");
            string output = await SwallowCancellation(outText);
            string errors = await SwallowCancellation(errText);
            string log = ReadAndDelete(logFile);
            string errorText = string.Join("; ", new[] { log, errors }.Where(s => s.Length > 0).Distinct());
            return new CrunResult(exit.ExitStatus, output, errorText);
        }
        finally
        {
            CloseFd(ref childOut);
            CloseFd(ref childErr);
            CloseFd(ref devNull);
            stdout?.Dispose();
            stderr?.Dispose();
        }
    }

    /// <summary>How long a crun command runs before the agent logs what it and its children are doing (once; the command
    /// keeps its timeout). crun's commands take well under a second even under TCG and load; one that hung in a 20-pod
    /// CI run left nothing to say where, because the shim's call timed out and stopped the VM first.</summary>
    public static readonly TimeSpan StallReportAfter = TimeSpan.FromSeconds(15);

    private static async Task<ChildExit> WaitReportingStallAsync(int pid, Task<ChildExit> exited, List<string> args, CancellationToken cancellationToken)
    {
        using var stallTimer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stalled = Task.Delay(StallReportAfter, stallTimer.Token);
        try
        {
            if (await Task.WhenAny(exited, stalled) == stalled && !stalled.IsCanceled && !exited.IsCompleted)
                AgentLog.Write($"crun {Summary(args)} still running after {StallReportAfter.TotalSeconds:0} s: {ProcessTreeSnapshot.Describe(pid)}");
            return await exited.WaitAsync(cancellationToken);
        }
        finally
        {
            stallTimer.Cancel(); // no timer left behind a command that finished in time
        }
    }

    /// <summary>Runs a command and throws <see cref="CrunFailedException"/> (what + crun's error text) when it fails.</summary>
    public async Task<CrunResult> RunCheckedAsync(Func<string, List<string>> build, string what, CancellationToken cancellationToken)
    {
        string logFile = NewLogFile();
        var args = build(logFile);
        CrunResult result = await RunAsync(args, logFile, null, cancellationToken);
        if (!result.Succeeded) throw new CrunFailedException(FailureMessage(what, result));
        return result;
    }

    public static string FailureMessage(string what, CrunResult result) =>
        $"{what}: crun exited with status {result.ExitStatus}: {(result.ErrorText.Length > 0 ? result.ErrorText : "(no error text)")}";

    private static string Describe(List<string> args)
    {
        int command = args.FindIndex(a => a is "create" or "start" or "exec" or "kill" or "pause" or "resume" or "delete" or "ps");
        return command < 0 ? string.Join(' ', args.Skip(1)) : string.Join(' ', args.Skip(command));
    }

    /// <summary>The command and the short container id, for the log: "create 1f196f75b482".</summary>
    private static string Summary(List<string> args)
    {
        int command = args.FindIndex(a => a is "create" or "start" or "exec" or "kill" or "pause" or "resume" or "delete" or "ps");
        if (command < 0) return string.Join(' ', args.Skip(1));
        int id = args[command] == "kill" ? args.Count - 2 : args.Count - 1;
        return $"{args[command]} {AgentLog.ShortId(args[id])}";
    }

    private static async Task<string> ReadAllAsync(OutputStream stream, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        while (await stream.ReadAsync(16384, cancellationToken) is { } chunk)
        {
            text.Append(Encoding.UTF8.GetString(chunk));
            if (text.Length > 1024 * 1024) break;
        }
        return text.ToString().Trim();
    }

    private static async Task<string> SwallowCancellation(Task<string> task)
    {
        try
        {
            return await task;
        }
        catch (OperationCanceledException)
        {
            return "";
        }
    }

    private static string ReadAndDelete(string logFile)
    {
        try
        {
            if (!File.Exists(logFile)) return "";
            string text = File.ReadAllText(logFile).Trim();
            File.Delete(logFile);
            return CrunLogText.Clean(text);
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void CloseFd(ref int fd)
    {
        if (fd >= 0) close(fd);
        fd = -1;
    }
}

/// <summary>Turns crun's log (text or JSON lines) into one line of plain text.</summary>
public static class CrunLogText
{
    public static string Clean(string log)
    {
        var lines = new List<string>();
        foreach (string raw in log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string line = raw;
            if (line.StartsWith('{'))
            {
                try
                {
                    if (System.Text.Json.Nodes.JsonNode.Parse(line)?["msg"] is { } msg) line = (string?)msg ?? line;
                }
                catch (System.Text.Json.JsonException) { }
            }
            if (!lines.Contains(line)) lines.Add(line);
        }
        return string.Join("; ", lines);
    }
}
