using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using Sandbox.Fuzzing;

namespace Sandbox.Shim.Tests.FakeAgent;

/// <summary>
/// An agent that answers every call from a seeded random source: with probability <c>hostility</c> a failure with a
/// random status code and a hostile message; otherwise a well-formed answer whose every field holds a hostile value
/// (negative exit statuses, pid 0 and 2^32-1, thousands of pids, huge strings), output streams of random bytes, and
/// waits that end after a random delay. What the shim must do with it: refuse or accept each answer with a clear
/// error, and never crash, hang or leak.
/// </summary>
internal sealed class HostileAgent(Random random, double hostility) : Agent.Protocol.Agent.AgentBase
{
    private readonly object _gate = new();

    private T Answer<T>(T message, string method) where T : IMessage
    {
        lock (_gate)
        {
            if (random.NextDouble() < hostility)
            {
                var code = (StatusCode)random.Next(1, 17);
                throw new RpcException(new Status(code, $"{method}: " + HostileValues.String(random)));
            }
            // Health must stay plausible often enough for the sandbox to come up at all
            return random.Next(4) == 0 ? message : ProtobufFiller.Fill(random, message);
        }
    }

    private int Next(int max)
    {
        lock (_gate) return random.Next(max);
    }

    public override Task<HealthResponse> Health(HealthRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new HealthResponse { AgentVersion = "hostile" }, "Health"));

    public override Task<GetGuestInfoResponse> GetGuestInfo(GetGuestInfoRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new GetGuestInfoResponse(), "GetGuestInfo"));

    public override Task<CreateSandboxResponse> CreateSandbox(CreateSandboxRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new CreateSandboxResponse(), "CreateSandbox"));

    public override Task<DestroySandboxResponse> DestroySandbox(DestroySandboxRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new DestroySandboxResponse(), "DestroySandbox"));

    public override Task<CreateContainerResponse> CreateContainer(CreateContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new CreateContainerResponse { Pid = 7 }, "CreateContainer"));

    public override Task<StartContainerResponse> StartContainer(StartContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new StartContainerResponse { Pid = 7 }, "StartContainer"));

    public override Task<RemoveContainerResponse> RemoveContainer(RemoveContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new RemoveContainerResponse(), "RemoveContainer"));

    public override Task<PauseContainerResponse> PauseContainer(PauseContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new PauseContainerResponse(), "PauseContainer"));

    public override Task<ResumeContainerResponse> ResumeContainer(ResumeContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new ResumeContainerResponse(), "ResumeContainer"));

    public override Task<ListProcessesResponse> ListProcesses(ListProcessesRequest request, ServerCallContext context)
    {
        var response = Answer(new ListProcessesResponse(), "ListProcesses");
        if (Next(3) == 0)
            response.Pids.AddRange(Enumerable.Range(0, 100_000).Select(i => (uint)i));
        return Task.FromResult(response);
    }

    public override Task<ExecProcessResponse> ExecProcess(ExecProcessRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new ExecProcessResponse { Pid = 8 }, "ExecProcess"));

    public override Task<SignalProcessResponse> SignalProcess(SignalProcessRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new SignalProcessResponse(), "SignalProcess"));

    public override async Task<WaitProcessResponse> WaitProcess(WaitProcessRequest request, ServerCallContext context)
    {
        await Task.Delay(Next(300), context.CancellationToken);
        return Answer(new WaitProcessResponse { ExitStatus = 0 }, "WaitProcess");
    }

    public override Task ReadStdout(ReadOutputRequest request, IServerStreamWriter<OutputChunk> responseStream, ServerCallContext context) =>
        StreamAsync(responseStream, "ReadStdout", context.CancellationToken);

    public override Task ReadStderr(ReadOutputRequest request, IServerStreamWriter<OutputChunk> responseStream, ServerCallContext context) =>
        StreamAsync(responseStream, "ReadStderr", context.CancellationToken);

    private async Task StreamAsync(IServerStreamWriter<OutputChunk> stream, string method, CancellationToken cancellationToken)
    {
        for (int i = Next(4); i > 0; i--)
        {
            var chunk = Answer(new OutputChunk(), method);
            await stream.WriteAsync(chunk, cancellationToken);
        }
    }

    public override async Task<WriteStdinResponse> WriteStdin(IAsyncStreamReader<StdinChunk> requestStream, ServerCallContext context)
    {
        while (await requestStream.MoveNext(context.CancellationToken))
        {
        }
        return Answer(new WriteStdinResponse(), "WriteStdin");
    }

    public override Task<CloseStdinResponse> CloseStdin(CloseStdinRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new CloseStdinResponse(), "CloseStdin"));

    public override Task<TtyWinResizeResponse> TtyWinResize(TtyWinResizeRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new TtyWinResizeResponse(), "TtyWinResize"));

    public override Task<GetContainerStatsResponse> GetContainerStats(GetContainerStatsRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new GetContainerStatsResponse(), "GetContainerStats"));

    public override Task<UpdateContainerResponse> UpdateContainer(UpdateContainerRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(new UpdateContainerResponse(), "UpdateContainer"));
}
