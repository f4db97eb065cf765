using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Tests;

/// <summary>The agent started natively on a Unix socket and called with Grpc.Net.Client. Containers use fake-crun.py.</summary>
public sealed class AgentServerTests : IAsyncLifetime
{
    private readonly AgentProcess _agent = new();
    private Protocol.Agent.AgentClient Client => _agent.Client;

    public Task InitializeAsync() => _agent.InitializeAsync();
    public Task DisposeAsync() => _agent.DisposeAsync();

    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddSeconds(30));

    private static ByteString Spec(params string[] args)
    {
        string json = "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[" + string.Join(",", args.Select(a => System.Text.Json.JsonSerializer.Serialize(a, TestJson.Default.String))) +
                      "],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/var/run/netns/x\"}]}}";
        return ByteString.CopyFromUtf8(json);
    }

    private async Task<uint> CreateAsync(string id, bool stdin, params string[] args)
    {
        var response = await Client.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = id, OciSpecJson = Spec(args), RootfsPath = "/", Stdin = stdin,
        }, Deadline);
        return response.Pid;
    }

    private async Task<string> ReadAllAsync(AsyncServerStreamingCall<OutputChunk> call)
    {
        var text = new StringBuilder();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync()) text.Append(chunk.Data.ToStringUtf8());
        return text.ToString();
    }

    [Fact]
    public async Task Health_answers_with_the_agent_version()
    {
        var response = await Client.HealthAsync(new HealthRequest(), Deadline);
        Assert.Equal(AgentVersion.Text, response.AgentVersion);
    }

    [Fact]
    public async Task GetGuestInfo_reports_uptime_rss_and_ready_time()
    {
        var info = await Client.GetGuestInfoAsync(new GetGuestInfoRequest(), Deadline);
        Assert.NotEmpty(info.KernelRelease);
        Assert.NotEmpty(info.BootId);
        Assert.True(info.AgentRssBytes > 0);
        Assert.True(info.AgentReadyUptimeSeconds > 0);
        Assert.True(info.UptimeSeconds >= info.AgentReadyUptimeSeconds);
    }

    [Fact]
    public async Task An_unknown_method_returns_Unimplemented()
    {
        var method = new Method<HealthRequest, HealthResponse>(MethodType.Unary, "sandbox.agent.v1.Agent", "NoSuchMethod",
            Marshallers.Create(m => m.ToByteArray(), HealthRequest.Parser.ParseFrom),
            Marshallers.Create(m => m.ToByteArray(), HealthResponse.Parser.ParseFrom));
        var invoker = _agent.Channel.CreateCallInvoker();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await invoker.AsyncUnaryCall(method, null, Deadline, new HealthRequest()));
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Contains("NoSuchMethod", error.Status.Detail);
    }

    [Fact]
    public async Task A_malformed_spec_gives_InvalidArgument_naming_the_field_and_the_agent_keeps_serving()
    {
        var notJson = await Assert.ThrowsAsync<RpcException>(async () => await Client.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = "bad1", OciSpecJson = ByteString.CopyFromUtf8("{ not json"), RootfsPath = "/",
        }, Deadline));
        Assert.Equal(StatusCode.InvalidArgument, notJson.StatusCode);
        Assert.Contains("oci_spec_json", notJson.Status.Detail);

        var noArgs = await Assert.ThrowsAsync<RpcException>(async () => await Client.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = "bad2", OciSpecJson = ByteString.CopyFromUtf8("{\"process\":{\"args\":[]}}"), RootfsPath = "/",
        }, Deadline));
        Assert.Equal(StatusCode.InvalidArgument, noArgs.StatusCode);
        Assert.Contains("process.args", noArgs.Status.Detail);

        Assert.Equal(AgentVersion.Text, (await Client.HealthAsync(new HealthRequest(), Deadline)).AgentVersion);
        Assert.False(_agent.HasExited);
        Assert.Contains(_agent.StderrLines, l => l.Contains("InvalidArgument") && l.Contains("bad1"));
    }

    [Fact]
    public async Task A_duplicate_container_id_gives_AlreadyExists()
    {
        await CreateAsync("dup", false, "sleep", "100");
        var error = await Assert.ThrowsAsync<RpcException>(async () => await CreateAsync("dup", false, "sleep", "100"));
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);
        Assert.Contains("dup", error.Status.Detail);
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "dup", Force = true }, Deadline);
    }

    [Fact]
    public async Task Unknown_container_and_process_give_NotFound()
    {
        var container = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "nope" }, Deadline));
        Assert.Equal(StatusCode.NotFound, container.StatusCode);

        await CreateAsync("nf", false, "sleep", "100");
        var process = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "nf", ExecId = "x" }, Deadline));
        Assert.Equal(StatusCode.NotFound, process.StatusCode);
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "nf", Force = true }, Deadline);
    }

    [Fact]
    public async Task Crun_failure_gives_Internal_with_crun_error_text()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await CreateAsync("missing-exe", false, "/nonexistent/program"));
        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Contains("/nonexistent/program", error.Status.Detail);
        // the failed container left nothing behind: the id can be used again
        await CreateAsync("missing-exe", false, "sleep", "100");
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "missing-exe", Force = true }, Deadline);
    }

    [Fact]
    public async Task Output_written_before_the_reader_attaches_is_not_lost_and_the_exit_status_is_reported()
    {
        await CreateAsync("out", false, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3");
        await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "out" }, Deadline);
        var waited = await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "out" }, Deadline);
        Assert.Equal(3, waited.ExitStatus);
        Assert.True(waited.ExitedAtUnixNanos > 0);

        // the process has exited; its output still waits in the pipes
        string stdout = await ReadAllAsync(Client.ReadStdout(new ReadOutputRequest { ContainerId = "out" }, Deadline));
        string stderr = await ReadAllAsync(Client.ReadStderr(new ReadOutputRequest { ContainerId = "out" }, Deadline));
        Assert.Equal("to-stdout\n", stdout);
        Assert.Equal("to-stderr\n", stderr);

        // repeated waits answer at once with the same status
        var again = await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "out" }, Deadline);
        Assert.Equal(waited.ExitedAtUnixNanos, again.ExitedAtUnixNanos);
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "out" }, Deadline);
    }

    [Fact]
    public async Task Stdin_is_streamed_to_the_process_and_completing_the_stream_closes_it()
    {
        await CreateAsync("cat", true, "cat");
        await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "cat" }, Deadline);
        var reader = Client.ReadStdout(new ReadOutputRequest { ContainerId = "cat" }, Deadline);
        Task<string> output = ReadAllAsync(reader);

        using var writer = Client.WriteStdin(Deadline);
        await writer.RequestStream.WriteAsync(new StdinChunk { ContainerId = "cat", Data = ByteString.CopyFromUtf8("hello ") });
        await writer.RequestStream.WriteAsync(new StdinChunk { Data = ByteString.CopyFromUtf8("world") });
        await writer.RequestStream.CompleteAsync();
        var written = await writer.ResponseAsync;
        Assert.Equal(11UL, written.BytesWritten);

        Assert.Equal("hello world", await output);
        var waited = await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "cat" }, Deadline);
        Assert.Equal(0, waited.ExitStatus);
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "cat" }, Deadline);
    }

    [Fact]
    public async Task Concurrent_waiters_all_see_SIGKILL_as_137_and_exec_processes_are_reaped()
    {
        uint pid = await CreateAsync("kill", false, "sleep", "1000");
        Assert.True(pid > 0);
        var started = await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "kill" }, Deadline);
        Assert.Equal(pid, started.Pid);

        var exec = await Client.ExecProcessAsync(new ExecProcessRequest
        {
            ContainerId = "kill", ExecId = "e1", ProcessJson = ByteString.CopyFromUtf8("{\"args\":[\"sh\",\"-c\",\"exit 7\"]}"),
        }, Deadline);
        Assert.True(exec.Pid > 0);
        Assert.Equal(7, (await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "kill", ExecId = "e1" }, Deadline)).ExitStatus);

        var waits = Enumerable.Range(0, 3)
            .Select(_ => Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "kill" }, Deadline).ResponseAsync).ToList();
        var pids = await Client.ListProcessesAsync(new ListProcessesRequest { ContainerId = "kill" }, Deadline);
        Assert.Contains(pid, pids.Pids);
        await Client.SignalProcessAsync(new SignalProcessRequest { ContainerId = "kill", Signal = 9 }, Deadline);
        foreach (var wait in waits) Assert.Equal(137, (await wait).ExitStatus);

        var signalExited = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.SignalProcessAsync(new SignalProcessRequest { ContainerId = "kill", Signal = 9 }, Deadline));
        Assert.Equal(StatusCode.NotFound, signalExited.StatusCode);
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "kill" }, Deadline);
    }

    [Fact]
    public async Task Wrong_states_give_FailedPrecondition()
    {
        await CreateAsync("states", false, "sleep", "1000");
        var notRunning = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.PauseContainerAsync(new PauseContainerRequest { ContainerId = "states" }, Deadline));
        Assert.Equal(StatusCode.FailedPrecondition, notRunning.StatusCode);

        await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "states" }, Deadline);
        var twice = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.StartContainerAsync(new StartContainerRequest { ContainerId = "states" }, Deadline));
        Assert.Equal(StatusCode.FailedPrecondition, twice.StatusCode);

        var removeRunning = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "states" }, Deadline));
        Assert.Equal(StatusCode.FailedPrecondition, removeRunning.StatusCode);

        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "states", Force = true }, Deadline);
        var gone = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.WaitProcessAsync(new WaitProcessRequest { ContainerId = "states" }, Deadline));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }
}
