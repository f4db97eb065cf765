using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Ttrpc.Protocol;

namespace Sandbox.Ttrpc.Tests;

public sealed class ServerClientTests : IAsyncLifetime
{
    private const string Service = "test.v1.Echo";
    private readonly TestSocketDirectory _dir = new();
    private readonly TtrpcServiceRegistry _registry = new();
    private readonly List<string> _serverLog = new();
    private TtrpcServer? _server;

    private string SocketPath => _dir.Socket();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
        _dir.Dispose();
    }

    private void StartServer(TimeSpan? hangUpWait = null)
    {
        _server = new TtrpcServer(_registry, new TtrpcServerOptions
        {
            Log = line => { lock (_serverLog) _serverLog.Add(line); },
            HangUpWait = hangUpWait ?? new TtrpcServerOptions().HangUpWait,
        });
        _server.Start(SocketPath);
    }

    private void RegisterEcho() =>
        _registry.Register<StringValue, StringValue>(Service, "Echo", StringValue.Parser,
            (request, _) => Task.FromResult(new StringValue { Value = "echo:" + request.Value }));

    [Fact]
    public async Task Client_and_server_round_trip_a_typed_call_over_a_unix_socket()
    {
        RegisterEcho();
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync("unix://" + SocketPath, CancellationToken.None);

        var first = await client.CallAsync(Service, "Echo", new StringValue { Value = "a" }, StringValue.Parser);
        var second = await client.CallAsync(Service, "Echo", new StringValue { Value = "b" }, StringValue.Parser);

        Assert.Equal("echo:a", first.Value);
        Assert.Equal("echo:b", second.Value);
    }

    [Fact]
    public async Task Client_uses_odd_stream_ids_1_3_5()
    {
        var seen = new List<uint>();
        StartServerWithRawRecorder(seen);
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        for (int i = 0; i < 3; i++)
            await client.CallAsync(Service, "Any", Array.Empty<byte>());
        Assert.Equal(new uint[] { 1, 3, 5 }, seen);
    }

    private void StartServerWithRawRecorder(List<uint> streamIds)
    {
        // The registry does not expose stream ids; a raw listener records them instead.
        var listener = TtrpcServer.ListenUnix(SocketPath);
        _ = Task.Run(async () =>
        {
            using var socket = await listener.AcceptAsync();
            await using var stream = new System.Net.Sockets.NetworkStream(socket);
            var reader = new TtrpcFrameReader(stream);
            var writer = new TtrpcFrameWriter(stream);
            while (await reader.ReadFrameAsync(CancellationToken.None) is { } frame)
            {
                lock (streamIds) streamIds.Add(frame.Header.StreamId);
                await writer.WriteFrameAsync(frame.Header.StreamId, TtrpcMessageType.Response, 0, new Response().ToByteArray(), CancellationToken.None);
            }
            listener.Dispose();
        });
    }

    [Fact]
    public async Task Success_response_has_no_status_and_empty_result_has_empty_body()
    {
        _registry.Register(Service, "Nothing", (_, _) => Task.FromResult(Array.Empty<byte>()));
        StartServer();
        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);
        await raw.WriteRequestAsync(0x11, new Request { Service = Service, Method = "Nothing" });
        var (streamId, response) = await raw.ReadResponseAsync();
        Assert.Equal(0x11u, streamId);
        Assert.Null(response.Status);
        Assert.True(response.Payload.IsEmpty);
        Assert.Equal(0, response.CalculateSize());
    }

    [Fact]
    public async Task Concurrent_calls_on_one_connection_are_answered_out_of_order()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register<StringValue, StringValue>(Service, "Slow", StringValue.Parser, async (request, context) =>
        {
            await release.Task.WaitAsync(context.CancellationToken);
            return new StringValue { Value = "slow" };
        });
        _registry.Register<StringValue, StringValue>(Service, "Fast", StringValue.Parser, (request, _) =>
        {
            release.SetResult(); // the slow call can only finish after the fast one was handled
            return Task.FromResult(new StringValue { Value = "fast" });
        });
        StartServer();

        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);
        await raw.WriteRequestAsync(1, new Request { Service = Service, Method = "Slow", Payload = new StringValue().ToByteString() });
        await raw.WriteRequestAsync(3, new Request { Service = Service, Method = "Fast", Payload = new StringValue().ToByteString() });

        var firstAnswer = await raw.ReadResponseAsync();
        var secondAnswer = await raw.ReadResponseAsync();
        Assert.Equal(3u, firstAnswer.StreamId);
        Assert.Equal("fast", StringValue.Parser.ParseFrom(firstAnswer.Response.Payload).Value);
        Assert.Equal(1u, secondAnswer.StreamId);
        Assert.Equal("slow", StringValue.Parser.ParseFrom(secondAnswer.Response.Payload).Value);
    }

    [Fact]
    public async Task Client_runs_many_calls_in_flight_at_once()
    {
        var arrived = 0;
        var allArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register<StringValue, StringValue>(Service, "Gather", StringValue.Parser, async (request, context) =>
        {
            if (Interlocked.Increment(ref arrived) == 8)
                allArrived.SetResult();
            await allArrived.Task.WaitAsync(context.CancellationToken);
            return new StringValue { Value = request.Value };
        });
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);

        var calls = Enumerable.Range(0, 8)
            .Select(i => client.CallAsync(Service, "Gather", new StringValue { Value = i.ToString() }, StringValue.Parser, TimeSpan.FromSeconds(30)))
            .ToArray();
        var results = await Task.WhenAll(calls);

        Assert.Equal(Enumerable.Range(0, 8).Select(i => i.ToString()), results.Select(r => r.Value));
    }

    [Fact]
    public async Task Even_stream_id_is_refused_with_InvalidArgument()
    {
        RegisterEcho();
        StartServer();
        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);
        await raw.WriteRequestAsync(2, new Request { Service = Service, Method = "Echo" });
        var (streamId, response) = await raw.ReadResponseAsync();
        Assert.Equal(2u, streamId);
        Assert.Equal((int)TtrpcStatusCode.InvalidArgument, response.Status.Code);
        Assert.Equal("StreamID must be odd for client initiated streams", response.Status.Message);
    }

    [Fact]
    public async Task Unknown_service_and_method_are_Unimplemented()
    {
        RegisterEcho();
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);

        var noService = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync("no.such.Service", "Echo", Array.Empty<byte>()));
        Assert.Equal(TtrpcStatusCode.Unimplemented, noService.Code);
        Assert.Equal("service no.such.Service", noService.Message);

        var noMethod = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Service, "Nope", Array.Empty<byte>()));
        Assert.Equal(TtrpcStatusCode.Unimplemented, noMethod.Code);
        Assert.Equal("method Nope", noMethod.Message);
    }

    [Fact]
    public async Task Undecodable_envelope_and_payload_are_InvalidArgument_and_the_connection_stays_up()
    {
        RegisterEcho();
        StartServer();
        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);

        await raw.WriteFrameAsync(1, TtrpcMessageType.Request, new byte[] { 0x0a, 0x7f, 0x01 }); // truncated string field
        var envelope = await raw.ReadResponseAsync();
        Assert.Equal((int)TtrpcStatusCode.InvalidArgument, envelope.Response.Status.Code);
        Assert.StartsWith("unmarshal request error", envelope.Response.Status.Message);

        await raw.WriteRequestAsync(3, new Request { Service = Service, Method = "Echo", Payload = ByteString.CopyFrom(0x0a, 0x7f) });
        var payload = await raw.ReadResponseAsync();
        Assert.Equal(3u, payload.StreamId);
        Assert.Equal((int)TtrpcStatusCode.InvalidArgument, payload.Response.Status.Code);

        await raw.WriteRequestAsync(5, new Request { Service = Service, Method = "Echo", Payload = new StringValue { Value = "x" }.ToByteString() });
        var ok = await raw.ReadResponseAsync();
        Assert.Equal("echo:x", StringValue.Parser.ParseFrom(ok.Response.Payload).Value);
    }

    [Fact]
    public async Task Oversized_request_gets_ResourceExhausted_and_the_connection_stays_up()
    {
        RegisterEcho();
        StartServer();
        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);

        await raw.WriteFrameAsync(1, TtrpcMessageType.Request, new byte[TtrpcFrameHeader.MaxDataLength + 1]);
        var (streamId, response) = await raw.ReadResponseAsync();
        Assert.Equal(1u, streamId);
        Assert.Equal((int)TtrpcStatusCode.ResourceExhausted, response.Status.Code);
        Assert.Equal($"message length {TtrpcFrameHeader.MaxDataLength + 1} exceed maximum message size of {TtrpcFrameHeader.MaxDataLength}",
            response.Status.Message);

        await raw.WriteRequestAsync(3, new Request { Service = Service, Method = "Echo", Payload = new StringValue { Value = "after" }.ToByteString() });
        var ok = await raw.ReadResponseAsync();
        Assert.Equal(3u, ok.StreamId);
        Assert.Equal("echo:after", StringValue.Parser.ParseFrom(ok.Response.Payload).Value);
    }

    [Fact]
    public async Task Garbage_closes_only_that_connection()
    {
        RegisterEcho();
        StartServer();
        await using var good = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        await using var bad = await RawTtrpcConnection.ConnectAsync(SocketPath);

        await bad.WriteBytesAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.True(await bad.IsClosedByServerAsync());

        var answer = await good.CallAsync(Service, "Echo", new StringValue { Value = "still" }, StringValue.Parser);
        Assert.Equal("echo:still", answer.Value);
        await using var fresh = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        Assert.Equal("echo:new", (await fresh.CallAsync(Service, "Echo", new StringValue { Value = "new" }, StringValue.Parser)).Value);
    }

    [Fact]
    public async Task Handler_exceptions_become_statuses()
    {
        _registry.Register(Service, "NotFound", (_, _) => throw new TtrpcException(TtrpcStatusCode.NotFound, "process already finished"));
        _registry.Register(Service, "Crash", (_, _) => throw new InvalidOperationException("boom"));
        _registry.Register(Service, "CrashLater", async (_, _) =>
        {
            await Task.Yield();
            throw new TtrpcException(TtrpcStatusCode.FailedPrecondition, "not stopped");
        });
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);

        var notFound = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Service, "NotFound", Array.Empty<byte>()));
        Assert.Equal(TtrpcStatusCode.NotFound, notFound.Code);
        Assert.Equal("process already finished", notFound.Message);

        var crash = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Service, "Crash", Array.Empty<byte>()));
        Assert.Equal(TtrpcStatusCode.Unknown, crash.Code);
        Assert.Equal("boom", crash.Message);

        var later = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Service, "CrashLater", Array.Empty<byte>()));
        Assert.Equal(TtrpcStatusCode.FailedPrecondition, later.Code);
    }

    [Fact]
    public async Task Timeout_nano_cancels_the_handler_and_answers_DeadlineExceeded()
    {
        var handlerCancelled = new TaskCompletionSource<TimeSpan?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register(Service, "Hang", async (_, context) =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                handlerCancelled.SetResult(context.Timeout);
                throw;
            }
            return Array.Empty<byte>();
        });
        StartServer();
        await using var raw = await RawTtrpcConnection.ConnectAsync(SocketPath);

        await raw.WriteRequestAsync(1, new Request { Service = Service, Method = "Hang", TimeoutNano = 50_000_000 });
        var (_, response) = await raw.ReadResponseAsync();

        Assert.Equal((int)TtrpcStatusCode.DeadlineExceeded, response.Status.Code);
        Assert.Equal(TimeSpan.FromMilliseconds(50), await handlerCancelled.Task);
    }

    [Fact]
    public async Task Client_timeout_ends_the_wait_with_DeadlineExceeded()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register(Service, "Hang", async (_, context) =>
        {
            await release.Task; // ignores its token: only the client-side timer can end the wait
            return Array.Empty<byte>();
        });
        RegisterEcho();
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Service, "Hang", Array.Empty<byte>(), TimeSpan.FromMilliseconds(50)));
        Assert.Equal(TtrpcStatusCode.DeadlineExceeded, e.Code);

        release.SetResult(); // the late answer is dropped and the connection keeps working
        Assert.Equal("echo:ok", (await client.CallAsync(Service, "Echo", new StringValue { Value = "ok" }, StringValue.Parser)).Value);
    }

    [Fact]
    public async Task Metadata_reaches_the_handler()
    {
        var seen = new TaskCompletionSource<(string?, string[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register(Service, "Meta", (_, context) =>
        {
            seen.SetResult((context.Metadata.Get("containerd-namespace-ttrpc"), context.Metadata.GetAll("x-repeat").ToArray()));
            return Task.FromResult(Array.Empty<byte>());
        });
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);

        await client.CallAsync(Service, "Meta", Array.Empty<byte>(), metadata: new[]
        {
            new KeyValuePair<string, string>("Containerd-Namespace-Ttrpc", "k8s.io"),
            new KeyValuePair<string, string>("x-repeat", "1"),
            new KeyValuePair<string, string>("x-repeat", "2"),
        });

        var (ns, repeated) = await seen.Task;
        Assert.Equal("k8s.io", ns);
        Assert.Equal(new[] { "1", "2" }, repeated);
    }

    [Fact]
    public async Task Calls_in_flight_fail_with_Unavailable_when_the_server_goes_away()
    {
        _registry.Register(Service, "Hang", async (_, context) =>
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
            return Array.Empty<byte>();
        });
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        var call = client.CallAsync(Service, "Hang", Array.Empty<byte>());

        await WaitUntilAsync(() => _server!.ActiveRequests == 1);
        await _server!.ShutdownAsync(TimeSpan.Zero);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => call);
        Assert.Equal(TtrpcStatusCode.Unavailable, e.Code);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Shutdown_lets_a_request_in_flight_finish_within_the_grace_period()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register(Service, "Finish", async (_, _) =>
        {
            await release.Task;
            return new byte[] { 0x08, 0x01 };
        });
        StartServer();
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        var call = client.CallAsync(Service, "Finish", Array.Empty<byte>());
        await WaitUntilAsync(() => _server!.ActiveRequests == 1);

        var shutdown = _server!.ShutdownAsync(TimeSpan.FromMinutes(5));
        release.SetResult();
        await shutdown;

        Assert.Equal(new byte[] { 0x08, 0x01 }, await call);
        await Assert.ThrowsAnyAsync<Exception>(() => TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None));
    }

    /// <summary>The answer to the last call (containerd's ShutdownSandbox) must not race the connection's close: after
    /// it, a graceful shutdown leaves the connection open until the client hangs up.</summary>
    [Fact]
    public async Task Shutdown_leaves_the_connection_open_after_the_last_answer_until_the_client_hangs_up()
    {
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Register(Service, "Last", (_, _) =>
        {
            answered.SetResult(); // as the shim's ShutdownSandbox: it asks the daemon to stop before its answer is out
            return Task.FromResult(new byte[] { 0x08, 0x01 });
        });
        StartServer(hangUpWait: TimeSpan.FromMinutes(5));
        var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        var call = client.CallAsync(Service, "Last", Array.Empty<byte>());
        await answered.Task;
        var shutdown = _server!.ShutdownAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(new byte[] { 0x08, 0x01 }, await call);
        await Task.Delay(200);
        Assert.True(client.IsConnected, "the server closed the connection before the client hung up");
        Assert.False(shutdown.IsCompleted);

        await client.DisposeAsync();
        await shutdown.WaitAsync(TimeSpan.FromSeconds(30)); // ends at the hang-up, not after the 5 min wait
        Assert.Equal(0, _server.OpenConnections);
    }

    [Fact]
    public async Task Shutdown_closes_a_connection_whose_client_does_not_hang_up_after_the_wait()
    {
        RegisterEcho();
        StartServer(hangUpWait: TimeSpan.FromMilliseconds(200));
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        await client.CallAsync(Service, "Echo", new StringValue { Value = "x" }.ToByteArray());

        await _server!.ShutdownAsync(TimeSpan.FromSeconds(30)).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, _server.OpenConnections);
        await WaitUntilAsync(() => !client.IsConnected);
    }

    [Fact]
    public async Task Peer_running_as_another_user_is_disconnected()
    {
        Assert.Equal(0u, UnixPeerCredentials.EffectiveUserIdOfThisProcess()); // the test needs root to switch users
        RegisterEcho();
        StartServer(); // RequireSameUser defaults to true
        // let uid 65534 reach the socket at all, so that only the SO_PEERCRED check can refuse it
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(SocketPath, (UnixFileMode)0b110_110_110);

        // as nobody: connect, send an Echo request, print what comes back ("EOF" when the server hangs up)
        var request = new Request { Service = Service, Method = "Echo", Payload = new StringValue { Value = "x" }.ToByteString() }.ToByteArray();
        var script = "import socket,struct,sys\n" +
                     "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n" +
                     "b=bytes.fromhex(sys.argv[2])\n" +
                     "try:\n s.sendall(struct.pack('>IIBB',len(b),1,1,0)+b)\n d=s.recv(100)\n" +
                     "except (ConnectionResetError, BrokenPipeError):\n d=b''\n" + // the server may hang up before or after the request
                     "print('EOF' if not d else 'DATA')\n";
        var psi = new System.Diagnostics.ProcessStartInfo("setpriv",
            new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, SocketPath, Convert.ToHexString(request) })
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var python = System.Diagnostics.Process.Start(psi)!;
        var output = await python.StandardOutput.ReadToEndAsync();
        var errors = await python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync();

        Assert.True(python.ExitCode == 0, errors);
        Assert.Equal("EOF", output.Trim());
        lock (_serverLog)
            Assert.Contains(_serverLog, line => line.Contains("uid 65534"));

        // the same server still serves its own user
        await using var client = await TtrpcClient.ConnectAsync(SocketPath, CancellationToken.None);
        Assert.Equal("echo:me", (await client.CallAsync(Service, "Echo", new StringValue { Value = "me" }, StringValue.Parser)).Value);
    }

    [Fact]
    public void Socket_is_created_with_mode_0600()
    {
        using var listener = TtrpcServer.ListenUnix(SocketPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(SocketPath));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
            await Task.Delay(5, timeout.Token);
    }
}
