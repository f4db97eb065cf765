using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Ctl;

/// <summary>
/// One `sandboxctl exec` session with a guest's agent (the DebugConsole RPC): host stdin goes in, the guest's stdout
/// and stderr come out, window sizes follow the host terminal; returns the command's exit status.
/// </summary>
public sealed class DebugConsoleCall(AgentClient agent)
{
    private const int ChunkSize = 32 * 1024;

    public async Task<int> RunAsync(IReadOnlyList<string> args, bool terminal, (int Rows, int Columns) size, Stream stdin, Stream stdout,
        Stream stderr, Func<(int Rows, int Columns)?>? resized, CancellationToken cancellationToken)
    {
        using var call = agent.DebugConsole(cancellationToken: cancellationToken);
        var first = new DebugConsoleInput { Terminal = terminal, Rows = (uint)Math.Max(size.Rows, 0), Columns = (uint)Math.Max(size.Columns, 0) };
        first.Args.AddRange(args);
        var writing = new SemaphoreSlim(1, 1);
        async Task SendAsync(DebugConsoleInput input)
        {
            await writing.WaitAsync(cancellationToken);
            try { await call.RequestStream.WriteAsync(input, cancellationToken); }
            finally { writing.Release(); }
        }
        await SendAsync(first);

        using var pumpStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pumpIn = PumpInputAsync(stdin, terminal, SendAsync, pumpStop.Token);
        var watchSize = resized is null ? Task.CompletedTask : WatchSizeAsync(resized, SendAsync, pumpStop.Token);
        int? status = null;
        try
        {
            await foreach (var output in call.ResponseStream.ReadAllAsync(cancellationToken))
            {
                if (!output.Stdout.IsEmpty)
                {
                    await stdout.WriteAsync(output.Stdout.Memory, cancellationToken);
                    await stdout.FlushAsync(cancellationToken);
                }
                if (!output.Stderr.IsEmpty)
                {
                    await stderr.WriteAsync(output.Stderr.Memory, cancellationToken);
                    await stderr.FlushAsync(cancellationToken);
                }
                if (output.Exited)
                    status = output.ExitStatus;
            }
        }
        finally
        {
            pumpStop.Cancel();
        }
        return status ?? throw new IOException("the agent ended the debug console without an exit status");
    }

    private static async Task PumpInputAsync(Stream stdin, bool terminal, Func<DebugConsoleInput, Task> send, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkSize];
        try
        {
            while (true)
            {
                int n = await stdin.ReadAsync(buffer, cancellationToken);
                if (n == 0)
                {
                    if (!terminal)
                        await send(new DebugConsoleInput { CloseStdin = true });
                    return;
                }
                await send(new DebugConsoleInput { Data = ByteString.CopyFrom(buffer, 0, n) });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or RpcException or InvalidOperationException)
        {
            // the command ended, or the call did
        }
    }

    private static async Task WatchSizeAsync(Func<(int Rows, int Columns)?> resized, Func<DebugConsoleInput, Task> send, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(250, cancellationToken);
                if (resized() is { } size)
                    await send(new DebugConsoleInput { Rows = (uint)size.Rows, Columns = (uint)size.Columns });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
        {
        }
    }
}
