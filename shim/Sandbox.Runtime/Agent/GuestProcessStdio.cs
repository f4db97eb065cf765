using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// The stdio of one process in the guest, moved between host streams and the agent's stdio RPCs.
/// Output copies run until the guest side reaches EOF, so a caller that awaits them before reporting the exit
/// delivers every byte.
/// </summary>
public sealed class GuestProcessStdio(AgentClient agent, string containerId, string execId = "")
{
    private const int StdinChunkSize = 64 * 1024;

    public string ContainerId => containerId;
    public string ExecId => execId;

    /// <summary>Copies the process's stdout to <paramref name="destination"/> until the guest reaches end of file, then
    /// flushes it. <paramref name="counter"/>, when given, counts what arrived and what was written, also when the copy fails.</summary>
    public Task<long> CopyStdoutToAsync(Stream destination, CancellationToken cancellationToken, OutputCopyCounter? counter = null) =>
        CopyOutputAsync(agent.ReadStdout(Request(), cancellationToken: cancellationToken), destination, counter ?? new(), cancellationToken);

    /// <summary>As <see cref="CopyStdoutToAsync"/>, for stderr.</summary>
    public Task<long> CopyStderrToAsync(Stream destination, CancellationToken cancellationToken, OutputCopyCounter? counter = null) =>
        CopyOutputAsync(agent.ReadStderr(Request(), cancellationToken: cancellationToken), destination, counter ?? new(), cancellationToken);

    /// <summary>Copies <paramref name="source"/> to the process's stdin until EOF, then closes the process's stdin.</summary>
    public async Task<long> WriteStdinFromAsync(Stream source, CancellationToken cancellationToken)
    {
        using var call = agent.WriteStdin(cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new StdinChunk { ContainerId = containerId, ExecId = execId }, cancellationToken);
        var buffer = new byte[StdinChunkSize];
        long total = 0;
        int n;
        while ((n = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await call.RequestStream.WriteAsync(new StdinChunk { Data = ByteString.CopyFrom(buffer, 0, n) }, cancellationToken);
            total += n;
        }
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;
        return total;
    }

    private ReadOutputRequest Request() => new() { ContainerId = containerId, ExecId = execId };

    private static async Task<long> CopyOutputAsync(AsyncServerStreamingCall<OutputChunk> call, Stream destination,
        OutputCopyCounter counter, CancellationToken cancellationToken)
    {
        using (call)
        {
            await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken))
            {
                counter.Received += chunk.Data.Length;
                await destination.WriteAsync(chunk.Data.Memory, cancellationToken);
                counter.Written += chunk.Data.Length;
            }
            await destination.FlushAsync(cancellationToken);
            return counter.Written;
        }
    }
}

/// <summary>What one output copy got from the agent and wrote to its destination (the log line at its end says both).</summary>
public sealed class OutputCopyCounter
{
    /// <summary>Bytes that arrived from the agent's stream.</summary>
    public long Received { get; set; }

    /// <summary>Bytes written to the destination.</summary>
    public long Written { get; set; }
}
