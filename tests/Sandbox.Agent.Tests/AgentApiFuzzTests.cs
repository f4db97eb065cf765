using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using Sandbox.Fuzzing;
using Xunit.Abstractions;

namespace Sandbox.Agent.Tests;

/// <summary>
/// Fuzzes the agent's gRPC API as the shim reaches it (every method of sandbox.agent.v1.Agent, unary and streaming):
/// payloads of random bytes, and well-formed requests whose fields hold hostile values (ids with "..", huge strings,
/// boundary numbers, unknown enum values). The agent runs natively in namespaces of its own (net, mount, UTS, IPC) with
/// fake crun. A running container is the bystander; another, the victim, is what half the fuzzed ids name. Each call must end within its deadline with a deliberate status
/// and a message (never Unknown, the agent's answer to an exception it did not expect; Internal is gRPC's status for
/// a request that does not decode), the agent must stay up and answer
/// Health, and the bystander must still be running. DestroySandbox is left out: killing every container is its job.
/// </summary>
public sealed class AgentApiFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Bystander = "bystander";
    private const string Victim = "victim";
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(bytes => bytes, bytes => bytes);
    private static readonly string[] MayBlock = ["WaitProcess", "ReadStdout", "ReadStderr", "ForwardPort"];

    private readonly AgentProcess _agent = new(ownNetworkNamespace: true, ownMountAndUtsNamespaces: true);

    public async Task InitializeAsync()
    {
        await _agent.InitializeAsync();
        await _agent.Client.CreateContainerAsync(new CreateContainerRequest { ContainerId = Bystander, OciSpecJson = ByteString.CopyFromUtf8(SleepSpec), RootfsPath = "/" },
            deadline: DateTime.UtcNow.AddSeconds(30));
        await _agent.Client.StartContainerAsync(new StartContainerRequest { ContainerId = Bystander }, deadline: DateTime.UtcNow.AddSeconds(30));
        await StartVictimAsync();
    }

    private const string SleepSpec = """{"ociVersion":"1.0.2","process":{"args":["sleep","1000"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}""";

    private async Task StartVictimAsync()
    {
        await _agent.Client.CreateContainerAsync(new CreateContainerRequest { ContainerId = Victim, OciSpecJson = ByteString.CopyFromUtf8(SleepSpec), RootfsPath = "/", Stdin = true },
            deadline: DateTime.UtcNow.AddSeconds(30));
        await _agent.Client.StartContainerAsync(new StartContainerRequest { ContainerId = Victim }, deadline: DateTime.UtcNow.AddSeconds(30));
    }

    public Task DisposeAsync() => _agent.DisposeAsync();

    [Fact]
    public async Task No_request_crashes_or_hangs_the_agent_or_disturbs_the_bystander()
    {
        var methods = Protocol.Agent.Descriptor.Methods.Where(m => m.Name != "DestroySandbox").ToArray();
        var run = new FuzzRun("agent gRPC API", iterations: 300, budget: TimeSpan.FromSeconds(40));
        var outcomes = new SortedDictionary<string, int>();
        await run.RunAsync(async fuzzCase =>
        {
            var random = fuzzCase.Random;
            var method = methods[random.Next(methods.Length)];
            var requests = Enumerable.Range(0, method.IsClientStreaming ? random.Next(0, 4) : 1)
                .Select(_ => Request(random, method.InputType)).ToArray();
            fuzzCase.Input = $"{method.Name}: " + string.Join(" | ", requests.Select(r => Convert.ToHexString(r.AsSpan(0, Math.Min(r.Length, 96))) + $" ({r.Length} bytes)"));

            int logged = _agent.StderrLines.Count;
            var status = await CallAsync(method, requests);
            outcomes[$"{method.Name} {status.StatusCode}"] = outcomes.GetValueOrDefault($"{method.Name} {status.StatusCode}") + 1;
            var unexpected = _agent.StderrLines.Skip(logged).Where(line => line.Contains("unexpected exception", StringComparison.Ordinal)).ToArray();
            Assert.False(status.StatusCode == StatusCode.Unknown || unexpected.Length > 0,
                $"{method.Name} failed with an exception the agent did not expect: {status.StatusCode} {status.Detail}\n" + string.Join("\n", unexpected));
            // DeadlineExceeded is the deadline's own status, not the agent's answer: which side ends the call first (the
            // client's timer, or the server's, whose status has no message) depends on the machine's load
            if (status.StatusCode == StatusCode.DeadlineExceeded)
                Assert.Contains(method.Name, MayBlock);
            else if (status.StatusCode != StatusCode.OK)
                Assert.False(string.IsNullOrWhiteSpace(status.Detail), $"{method.Name}: {status.StatusCode} without a message");

            Assert.False(_agent.HasExited, "the agent exited:\n" + string.Join("\n", _agent.StderrLines.TakeLast(20)));
            await _agent.Client.HealthAsync(new HealthRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
            if (method.Name == "RemoveContainer" && status.StatusCode == StatusCode.OK)
                await StartVictimAsync(); // the victim was removed (and its id is free again): the next calls get a new one
        });

        var stillRunning = await Assert.ThrowsAsync<RpcException>(async () =>
            await _agent.Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = Bystander }, deadline: DateTime.UtcNow.AddSeconds(1)));
        Assert.Equal(StatusCode.DeadlineExceeded, stillRunning.StatusCode);
        output.WriteLine($"seed {run.Seed}: {run.Completed} calls\n" + string.Join("\n", outcomes.Select(o => $"  {o.Key}: {o.Value}")));
        Assert.True(outcomes.Keys.Count(k => !k.EndsWith(" OK", StringComparison.Ordinal)) >= 5, "the fuzzed calls reached too few refusals to have tested anything");
        Assert.True(run.Completed >= 50, $"only {run.Completed} calls were made within the time budget");
    }

    /// <summary>
    /// One request payload: a third of them random bytes, the rest the message filled with hostile values, where half
    /// of the container ids name the victim (a running container the fuzz may signal, pause, resize or remove) so that
    /// the calls get past the lookup.
    /// </summary>
    private static byte[] Request(Random random, MessageDescriptor type)
    {
        if (random.Next(3) == 0)
            return HostileValues.Bytes(random);
        var message = ProtobufFiller.Fill(random, type.Parser.ParseFrom(ByteString.Empty));
        if (type.FindFieldByName("container_id") is { } containerId && random.Next(2) == 0)
            containerId.Accessor.SetValue(message, Victim);
        return message.ToByteArray();
    }

    /// <summary>Writes the requests and completes the stream. The agent may end the call before it has read them all
    /// (it refused the first one): the write then fails on the client's side, and the call's own status, read next, is
    /// the answer.</summary>
    private static async Task WriteAllAsync(IClientStreamWriter<byte[]> stream, byte[][] requests)
    {
        try
        {
            foreach (var request in requests)
                await stream.WriteAsync(request);
            await stream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException)
        {
        }
    }

    private async Task<Status> CallAsync(MethodDescriptor method, byte[][] requests)
    {
        var type = (method.IsClientStreaming, method.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            _ => MethodType.DuplexStreaming,
        };
        var grpcMethod = new Method<byte[], byte[]>(type, method.Service.FullName, method.Name, Raw, Raw);
        // calls that wait for the victim's output or exit end at a short deadline; every other call must answer within 10 s
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(MayBlock.Contains(method.Name) ? 1 : 10));
        var invoker = _agent.Channel.CreateCallInvoker();
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(grpcMethod, null, options, requests[0]);
                    break;
                case MethodType.ServerStreaming:
                    using (var call = invoker.AsyncServerStreamingCall(grpcMethod, null, options, requests[0]))
                        await foreach (var _ in call.ResponseStream.ReadAllAsync()) { }
                    break;
                case MethodType.ClientStreaming:
                    using (var call = invoker.AsyncClientStreamingCall(grpcMethod, null, options))
                    {
                        await WriteAllAsync(call.RequestStream, requests);
                        await call.ResponseAsync;
                    }
                    break;
                default:
                    using (var call = invoker.AsyncDuplexStreamingCall(grpcMethod, null, options))
                    {
                        await WriteAllAsync(call.RequestStream, requests);
                        await foreach (var _ in call.ResponseStream.ReadAllAsync()) { }
                    }
                    break;
            }
            return Status.DefaultSuccess;
        }
        catch (RpcException e)
        {
            return e.Status;
        }
    }
}
