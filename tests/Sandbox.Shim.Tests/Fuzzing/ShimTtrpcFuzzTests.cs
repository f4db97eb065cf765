using System.Net.Sockets;
using Containerd.Task.V2;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Sandbox.Fuzzing;
using Sandbox.Shim.SandboxApi;
using Sandbox.Shim.Tasks;
using Sandbox.Ttrpc;
using Sandbox.Ttrpc.Protocol;
using Xunit.Abstractions;
using SandboxV1 = Containerd.Runtime.Sandbox.V1;
using TaskStatus = Containerd.V1.Types.Status;

namespace Sandbox.Shim.Tests.Fuzzing;

/// <summary>
/// Fuzzes the shim's ttrpc server as the shim daemon builds it (the Task API v2 and v3 and the Sandbox API on one
/// TtrpcServer, here over the fake backend): random bytes, mutated frames, huge lengths, truncated streams, wrong
/// stream ids and message types, and well-formed requests to every method whose fields hold hostile values. A
/// container started before the run is the bystander. After each input, on a fresh connection, the server must
/// answer and the bystander must still be running; every answer to a fuzzed request must be a deliberate status (no
/// handler failed with an unexpected exception, which the server logs) with a message; no connection may hang.
/// </summary>
public sealed class ShimTtrpcFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Bystander = "bystander-0";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private static readonly (string Service, string Method, MessageDescriptor Request)[] Methods =
    [
        .. TaskMethods(TaskService.ServiceName),
        .. TaskMethods(TaskService.ServiceNameV3),
        (SandboxApiService.ServiceName, "CreateSandbox", SandboxV1.CreateSandboxRequest.Descriptor),
        (SandboxApiService.ServiceName, "StartSandbox", SandboxV1.StartSandboxRequest.Descriptor),
        (SandboxApiService.ServiceName, "Platform", SandboxV1.PlatformRequest.Descriptor),
        (SandboxApiService.ServiceName, "StopSandbox", SandboxV1.StopSandboxRequest.Descriptor),
        (SandboxApiService.ServiceName, "WaitSandbox", SandboxV1.WaitSandboxRequest.Descriptor),
        (SandboxApiService.ServiceName, "SandboxStatus", SandboxV1.SandboxStatusRequest.Descriptor),
        (SandboxApiService.ServiceName, "PingSandbox", SandboxV1.PingRequest.Descriptor),
        (SandboxApiService.ServiceName, "ShutdownSandbox", SandboxV1.ShutdownSandboxRequest.Descriptor),
    ];

    private readonly string _directory = Directory.CreateTempSubdirectory("ttrpc-fuzz-").FullName;
    private readonly List<string> _serverLog = new();
    private readonly FakeBackend _backend = new();
    private TtrpcServer _server = null!;
    private string SocketPath => Path.Combine(_directory, "shim.sock");

    private static IEnumerable<(string, string, MessageDescriptor)> TaskMethods(string service) =>
    [
        (service, "State", StateRequest.Descriptor), (service, "Create", CreateTaskRequest.Descriptor),
        (service, "Start", StartRequest.Descriptor), (service, "Delete", DeleteRequest.Descriptor),
        (service, "Pids", PidsRequest.Descriptor), (service, "Pause", PauseRequest.Descriptor),
        (service, "Resume", ResumeRequest.Descriptor), (service, "Checkpoint", CheckpointTaskRequest.Descriptor),
        (service, "Kill", KillRequest.Descriptor), (service, "Exec", global::Containerd.Task.V2.ExecProcessRequest.Descriptor),
        (service, "ResizePty", ResizePtyRequest.Descriptor), (service, "CloseIO", CloseIORequest.Descriptor),
        (service, "Update", UpdateTaskRequest.Descriptor), (service, "Wait", WaitRequest.Descriptor),
        (service, "Stats", StatsRequest.Descriptor), (service, "Connect", ConnectRequest.Descriptor),
        (service, "Shutdown", ShutdownRequest.Descriptor),
    ];

    public async Task InitializeAsync()
    {
        var service = new TaskService(_backend, new RecordingPublisher(), new FakeRootfsMounter(), Log);
        var sandboxes = new SandboxApiService(null, "fake", Log);
        var registry = new TtrpcServiceRegistry();
        service.RegisterOn(registry, TaskService.ServiceName);
        service.RegisterOn(registry, TaskService.ServiceNameV3);
        sandboxes.RegisterOn(registry);
        _server = new TtrpcServer(registry, new TtrpcServerOptions { Log = Log });
        _server.Start(SocketPath);

        await using var client = await TtrpcClient.ConnectAsync("unix://" + SocketPath, CancellationToken.None);
        await client.CallAsync(TaskService.ServiceName, "Create", new CreateTaskRequest { Id = Bystander, Bundle = "/run/b/" + Bystander }, CreateTaskResponse.Parser);
        await client.CallAsync(TaskService.ServiceName, "Start", new StartRequest { Id = Bystander }, StartResponse.Parser);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private void Log(string line)
    {
        lock (_serverLog) _serverLog.Add(line);
    }

    [Fact]
    public async Task No_input_crashes_or_hangs_the_server_or_disturbs_the_bystander()
    {
        var run = new FuzzRun("shim ttrpc server", iterations: 400, budget: TimeSpan.FromSeconds(60));
        var statuses = new SortedDictionary<string, int>();
        await run.RunAsync(async fuzzCase =>
        {
            var random = fuzzCase.Random;
            var (bytes, answered) = random.Next(6) switch
            {
                0 => RandomBytes(fuzzCase),
                1 => MutatedFrames(fuzzCase),
                2 => HugeOrTruncated(fuzzCase),
                3 => WrongStreamsAndTypes(fuzzCase),
                4 => GarbagePayload(fuzzCase),
                _ => HostileRequests(fuzzCase),
            };
            int logged = LogCount();
            var responses = await ExchangeAsync(bytes, answered);

            foreach (var (streamId, response) in responses)
            {
                string code = ((TtrpcStatusCode)(response.Status?.Code ?? 0)).ToString();
                statuses[code] = statuses.GetValueOrDefault(code) + 1;
                if (streamId % 2 == 0)
                    Assert.Equal((int)TtrpcStatusCode.InvalidArgument, response.Status?.Code);
                if (response.Status is { Code: not 0 } status)
                {
                    Assert.False(string.IsNullOrWhiteSpace(status.Message), $"status {(TtrpcStatusCode)status.Code} on stream {streamId} without a message");
                }
            }
            if (answered is not null)
            {
                var streams = responses.Select(r => r.StreamId).Order().ToArray();
                Assert.True(streams.SequenceEqual(answered.Order()),
                    $"requests on streams {string.Join(",", answered.Order())} got answers on {string.Join(",", streams)}: each must get exactly one");
            }
            string[] unexpected = LogSince(logged).Where(line => line.Contains(" failed: System.", StringComparison.Ordinal)).ToArray();
            Assert.True(unexpected.Length == 0, "a handler failed with an unexpected exception:\n" + string.Join("\n", unexpected));
            await AssertServesAndBystanderRunsAsync();
        });
        output.WriteLine($"seed {run.Seed}: {run.Completed} inputs; answers: {string.Join(", ", statuses.Select(s => $"{s.Key} {s.Value}"))}");
        Assert.True(statuses.Keys.Count >= 3, "the fuzzed requests reached too few outcomes to have tested anything");
        Assert.True(run.Completed >= 50, $"only {run.Completed} inputs were tried within the time budget");
    }

    /// <summary>
    /// Writes the input on a new connection. When every request stream must be answered, reads until each is (the
    /// connection stays open: like Go's ttrpc, the server drops answers still in flight when the client goes away).
    /// Otherwise closes the sending side and reads every frame until the server closes the connection.
    /// </summary>
    private async Task<List<(uint StreamId, Response Response)>> ExchangeAsync(byte[] input, HashSet<uint>? answered)
    {
        using var timeout = new CancellationTokenSource(Patience);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), timeout.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            await stream.WriteAsync(input, timeout.Token);
            if (answered is null)
                socket.Shutdown(SocketShutdown.Send);
        }
        catch (IOException)
        {
            // the server may close a connection that is not speaking ttrpc before reading all of it
        }
        var responses = new List<(uint, Response)>();
        var reader = new TtrpcFrameReader(stream);
        try
        {
            while ((answered is null || responses.Count < answered.Count) && await reader.ReadFrameAsync(timeout.Token) is { } frame)
            {
                Assert.Equal(TtrpcMessageType.Response, frame.Header.Type);
                responses.Add((frame.Header.StreamId, Response.Parser.ParseFrom(frame.Data)));
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail(answered is null
                ? $"the server did not close the connection within {Patience.TotalSeconds} s after the input ended"
                : $"{responses.Count} of {answered.Count} requests answered within {Patience.TotalSeconds} s");
        }
        catch (IOException)
        {
            // reset by the server: a connection it refused
        }
        return responses;
    }

    private async Task AssertServesAndBystanderRunsAsync()
    {
        using var timeout = new CancellationTokenSource(Patience);
        await using var client = await TtrpcClient.ConnectAsync("unix://" + SocketPath, timeout.Token);
        var state = await client.CallAsync(TaskService.ServiceName, "State", new StateRequest { Id = Bystander }, StateResponse.Parser, Patience, cancellationToken: timeout.Token);
        Assert.Equal(TaskStatus.Running, state.Status);
    }

    private static (byte[], HashSet<uint>?) RandomBytes(FuzzCase fuzzCase)
    {
        var bytes = HostileValues.Bytes(fuzzCase.Random);
        fuzzCase.Input = $"{bytes.Length} random bytes: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(64, bytes.Length)))}";
        return (bytes, null);
    }

    private static (byte[], HashSet<uint>?) MutatedFrames(FuzzCase fuzzCase)
    {
        var (valid, _) = Frames(fuzzCase.Random, fuzzCase.Random.Next(1, 4), hostile: false);
        var bytes = ByteMutator.Mutate(fuzzCase.Random, valid);
        fuzzCase.Input = $"mutated frames ({bytes.Length} bytes): {Convert.ToHexString(bytes.AsSpan(0, Math.Min(128, bytes.Length)))}";
        return (bytes, null);
    }

    private static (byte[], HashSet<uint>?) HugeOrTruncated(FuzzCase fuzzCase)
    {
        var random = fuzzCase.Random;
        var (valid, _) = Frames(random, 1, hostile: false);
        uint length = random.Next(3) switch
        {
            0 => uint.MaxValue,
            1 => (uint)TtrpcFrameHeader.MaxDataLength + (uint)random.Next(1, 1000),
            _ => (uint)(valid.Length - TtrpcFrameHeader.Size + random.Next(1, 100_000)),
        };
        new TtrpcFrameHeader(length, 1, TtrpcMessageType.Request, 0).WriteTo(valid);
        int cut = random.Next(2) == 0 ? valid.Length : random.Next(0, valid.Length);
        fuzzCase.Input = $"a frame header claiming {length} bytes, then {cut - TtrpcFrameHeader.Size} bytes and the end of the stream";
        return (valid[..cut], null);
    }

    private static (byte[], HashSet<uint>?) WrongStreamsAndTypes(FuzzCase fuzzCase)
    {
        var random = fuzzCase.Random;
        var request = new Request { Service = TaskService.ServiceName, Method = "State", Payload = new StateRequest { Id = Bystander }.ToByteString() };
        var output = new MemoryStream();
        var described = new List<string>();
        var streams = new HashSet<uint>();
        for (int i = random.Next(1, 6); i > 0; i--)
        {
            uint streamId = random.Next(4) switch { 0 => 0, 1 => (uint)random.Next(0, 10) * 2, 2 => uint.MaxValue, _ => 1 };
            var type = random.Next(3) == 0 ? TtrpcMessageType.Request : (TtrpcMessageType)random.Next(0, 256);
            byte flags = (byte)(random.Next(2) == 0 ? 0 : random.Next(256));
            Write(output, streamId, type, flags, request.ToByteArray());
            if (type == TtrpcMessageType.Request)
                streams.Add(streamId);
            described.Add($"stream {streamId} type {(byte)type} flags {flags}");
        }
        fuzzCase.Input = "State requests with " + string.Join(", ", described);
        return (output.ToArray(), null);
    }

    private static (byte[], HashSet<uint>?) GarbagePayload(FuzzCase fuzzCase)
    {
        var random = fuzzCase.Random;
        var (service, method, descriptor) = Methods[random.Next(Methods.Length)];
        var valid = ProtobufFiller.Fill(random, descriptor.Parser.ParseFrom(ByteString.Empty)).ToByteArray();
        var payload = random.Next(2) == 0 ? ByteMutator.Mutate(random, valid) : HostileValues.Bytes(random);
        var output = new MemoryStream();
        Write(output, 1, TtrpcMessageType.Request, 0, new Request { Service = service, Method = method, Payload = ByteString.CopyFrom(payload) }.ToByteArray());
        fuzzCase.Input = $"{service}/{method} with a payload of {payload.Length} bytes: {Convert.ToHexString(payload.AsSpan(0, Math.Min(128, payload.Length)))}";
        return (output.ToArray(), [1]);
    }

    private static (byte[], HashSet<uint>?) HostileRequests(FuzzCase fuzzCase)
    {
        return Frames(fuzzCase.Random, fuzzCase.Random.Next(1, 4), hostile: true, fuzzCase);
    }

    /// <summary>Well-formed request frames on streams 1, 3, 5...: valid envelopes; with hostile, fields of hostile values.</summary>
    private static (byte[], HashSet<uint>?) Frames(Random random, int count, bool hostile, FuzzCase? describe = null)
    {
        var output = new MemoryStream();
        var streams = new HashSet<uint>();
        var described = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var (service, method, descriptor) = Methods[random.Next(Methods.Length)];
            var message = descriptor.Parser.ParseFrom(ByteString.Empty);
            if (hostile)
                ProtobufFiller.Fill(random, message);
            var request = new Request
            {
                Service = service,
                Method = method,
                Payload = message.ToByteString(),
                // a hostile Wait must not hold the connection open past the exchange's patience
                TimeoutNano = (long)TimeSpan.FromSeconds(2).TotalNanoseconds,
            };
            uint streamId = (uint)(2 * i + 1);
            Write(output, streamId, TtrpcMessageType.Request, 0, request.ToByteArray());
            streams.Add(streamId);
            described.Add($"stream {streamId}: {service}/{method} {Describe(message)}");
        }
        if (describe is not null)
            describe.Input = string.Join("\n", described);
        return (output.ToArray(), streams);
    }

    private static void Write(Stream output, uint streamId, TtrpcMessageType type, byte flags, byte[] data)
    {
        var header = new byte[TtrpcFrameHeader.Size];
        new TtrpcFrameHeader((uint)data.Length, streamId, type, flags).WriteTo(header);
        output.Write(header);
        output.Write(data);
    }

    /// <summary>The message as JSON, or as hex when a lone surrogate makes it unprintable.</summary>
    private static string Describe(IMessage message)
    {
        try
        {
            return Shorten(message.ToString() ?? "");
        }
        catch (ArgumentException)
        {
            return Shorten(Convert.ToHexString(message.ToByteArray()));
        }
    }

    private static string Shorten(string text) => text.Length <= 600 ? text : text[..600] + "...";

    private int LogCount()
    {
        lock (_serverLog) return _serverLog.Count;
    }

    private string[] LogSince(int index)
    {
        lock (_serverLog) return _serverLog.Skip(index).ToArray();
    }
}
