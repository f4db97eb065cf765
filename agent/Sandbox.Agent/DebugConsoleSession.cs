using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Native;
using Sandbox.Agent.Protocol;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent;

/// <summary>
/// One DebugConsole call (`sandboxctl exec`): a shell or command in the guest itself, as root, outside every
/// container, on a pty or on pipes. Refused unless the sandbox was created with debug_console. Input: stdin, window
/// sizes, end of stdin. Output: stdout and stderr as they come, then one message with the exit status. When the caller
/// goes away, the process's session is killed.
/// </summary>
public sealed class DebugConsoleSession(SandboxSetup sandbox)
{
    private const int ChunkSize = 64 * 1024;
    private static readonly string[] DefaultCommand = ["/bin/sh"];
    private readonly SemaphoreSlim _sending = new(1, 1);

    public async Task RunAsync(IAsyncStreamReader<DebugConsoleInput> input, IServerStreamWriter<DebugConsoleOutput> output,
        CancellationToken cancellationToken)
    {
        if (!sandbox.DebugConsoleEnabled)
            throw AgentErrors.FailedPrecondition(
                $"the debug console of sandbox {sandbox.SandboxId ?? "(none yet)"} is off: set `debug_console = true` in the [agent] table of " +
                "the runtime's configuration.toml (/etc/sandbox/configuration.toml) and start the pod again");
        if (!await input.MoveNext(cancellationToken))
            throw AgentErrors.InvalidArgument("DebugConsole: the stream carried no message (the first one names the command)");
        var first = input.Current;
        string[] args = first.Args.Count > 0 ? first.Args.ToArray() : DefaultCommand;
        if (args.Any(a => a.Length == 0 || a.Contains('\0')))
            throw AgentErrors.InvalidArgument("DebugConsole: an argument is empty or holds a NUL byte");

        using var stdio = first.Terminal ? ProcessStdio.CreateOwnTerminal(first.Rows, first.Columns) : ProcessStdio.CreatePipes(stdin: true);
        var environment = new Dictionary<string, string>
        {
            ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ["HOME"] = "/root",
            ["TERM"] = first.Terminal ? "xterm" : "dumb",
        };
        (int pid, Task<ChildExit> exited) = first.Terminal
            // setsid -c: a session of its own with the pty as its controlling terminal, so that ^C and job control work
            ? ChildProcesses.Shared.Spawn("/bin/busybox", ["busybox", "setsid", "-c", .. args], stdio.ChildStdin, stdio.ChildStdout,
                stdio.ChildStderr, newSession: false, environment)
            : ChildProcesses.Shared.Spawn(ResolveProgram(args[0]), args, stdio.ChildStdin, stdio.ChildStdout, stdio.ChildStderr,
                newSession: true, environment);
        stdio.CloseChildEnds();
        AgentLog.Write($"DebugConsole: started pid {pid}: {string.Join(' ', args)}{(first.Terminal ? " (terminal)" : "")}");

        using var callerGone = cancellationToken.Register(() => kill(-pid, SIGKILL));
        // The input pump must have stopped reading before this call returns: the server pools a call's request body,
        // and a read still pending on it made the next call on the connection fail with "Reading is already in
        // progress" (seen once in 4 runs of SandboxctlExecTests).
        using var stopInput = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pumpIn = PumpInputAsync(first, input, stdio, stopInput.Token);
        try
        {
            var pumpOut = PumpOutputAsync(stdio.Stdout!, o => new DebugConsoleOutput { Stdout = o }, output, cancellationToken);
            var pumpErr = stdio.Terminal ? Task.CompletedTask
                : PumpOutputAsync(stdio.Stderr!, o => new DebugConsoleOutput { Stderr = o }, output, cancellationToken);
            var exit = await exited.WaitAsync(cancellationToken);
            // A pty's output ends when its last holder closes it; a background child of the shell may hold it: the
            // output read so far is flushed and the session is killed.
            await Task.WhenAny(Task.WhenAll(pumpOut, pumpErr), Task.Delay(TimeSpan.FromSeconds(2), cancellationToken));
            kill(-pid, SIGKILL);
            await SendAsync(output, new DebugConsoleOutput { Exited = true, ExitStatus = exit.ExitStatus }, cancellationToken);
            AgentLog.Write($"DebugConsole: pid {pid} exited with {exit.ExitStatus}");
        }
        finally
        {
            stopInput.Cancel();
            await pumpIn;
        }
    }

    private static string ResolveProgram(string program)
    {
        if (program.Contains('/')) return program;
        foreach (var directory in new[] { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin" })
        {
            string candidate = Path.Combine(directory, program);
            if (File.Exists(candidate)) return candidate;
        }
        throw AgentErrors.InvalidArgument($"DebugConsole: '{program}' is not found in the guest's PATH");
    }

    private static async Task PumpInputAsync(DebugConsoleInput first, IAsyncStreamReader<DebugConsoleInput> input, ProcessStdio stdio,
        CancellationToken cancellationToken)
    {
        try
        {
            var message = first;
            while (true)
            {
                if (!message.Data.IsEmpty) await stdio.Stdin!.WriteAsync(message.Data.Memory, cancellationToken);
                if (message != first && message.Rows > 0 && message.Columns > 0 && stdio.Terminal) stdio.Resize(message.Rows, message.Columns);
                if (message.CloseStdin && !stdio.Terminal) await stdio.Stdin!.CloseAsync();
                if (!await input.MoveNext(cancellationToken)) break;
                message = input.Current;
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            // the process is gone or the caller is: nothing to write to any more
        }
    }

    private async Task PumpOutputAsync(OutputStream stream, Func<ByteString, DebugConsoleOutput> wrap,
        IServerStreamWriter<DebugConsoleOutput> output, CancellationToken cancellationToken)
    {
        while (await stream.ReadAsync(ChunkSize, cancellationToken) is { } chunk)
            await SendAsync(output, wrap(UnsafeByteOperations.UnsafeWrap(chunk)), cancellationToken);
    }

    /// <summary>gRPC allows one write at a time on a stream: stdout, stderr and the exit take turns.</summary>
    private async Task SendAsync(IServerStreamWriter<DebugConsoleOutput> output, DebugConsoleOutput message, CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken);
        try
        {
            await output.WriteAsync(message, cancellationToken);
        }
        finally
        {
            _sending.Release();
        }
    }
}
