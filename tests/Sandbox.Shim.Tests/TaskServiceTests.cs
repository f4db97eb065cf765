using Sandbox.Shim.Backend;
using Containerd.Events;
using Containerd.Task.V2;
using Containerd.Types;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Tasks;
using Sandbox.Ttrpc;
using TaskStatus = Containerd.V1.Types.Status;

namespace Sandbox.Shim.Tests;

public sealed class TaskServiceTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly FakeBackend _backend = new();
    private readonly RecordingPublisher _events = new();
    private readonly FakeRootfsMounter _rootfs = new();
    private readonly List<string> _log = new();
    private readonly TaskService _service;

    public TaskServiceTests()
    {
        _service = new TaskService(_backend, _events, _rootfs, line => { lock (_log) _log.Add(line); });
    }

    private static CancellationToken None => CancellationToken.None;

    private Task<CreateTaskResponse> CreateAsync(string id = "c1", params Mount[] rootfs)
    {
        var request = new CreateTaskRequest { Id = id, Bundle = "/run/b/" + id, Stdout = "/fifo/" + id + "-stdout" };
        request.Rootfs.AddRange(rootfs);
        return _service.CreateAsync(request, None);
    }

    private Task<StateResponse> StateAsync(string id = "c1", string execId = "") =>
        _service.StateAsync(new StateRequest { Id = id, ExecId = execId }, None);

    private async Task WaitForStatusAsync(TaskStatus status, string id = "c1", string execId = "")
    {
        using var timeout = new CancellationTokenSource(Patience);
        while ((await StateAsync(id, execId)).Status != status)
            await Task.Delay(5, timeout.Token);
    }

    private static async Task<TtrpcException> FailsWith(TtrpcStatusCode code, Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(call);
        Assert.Equal(code, e.Code);
        return e;
    }

    [Fact]
    public async Task Create_registers_a_created_task_with_Go_zero_exit_time_and_publishes_create()
    {
        var created = await CreateAsync("c1", new Mount { Type = "overlay", Source = "overlay", Options = { "lowerdir=/l" } });
        var state = await StateAsync();

        Assert.Equal(1001u, created.Pid);
        Assert.Equal(TaskStatus.Created, state.Status);
        Assert.Equal(1001u, state.Pid);
        Assert.Equal("/run/b/c1", state.Bundle);
        Assert.Equal("/fifo/c1-stdout", state.Stdout);
        Assert.Equal(-62135596800, state.ExitedAt.Seconds);
        Assert.Equal(new[] { "/run/b/c1/rootfs" }, _rootfs.Mounted);
        var create = Assert.IsType<TaskCreate>(Assert.Single(_events.Events).Message);
        Assert.Equal("containerd.events.TaskCreate", _events.Events[0].TypeUrl);
        Assert.Equal(1001u, create.Pid);
        Assert.Equal("/fifo/c1-stdout", create.Io.Stdout);
    }

    [Fact]
    public async Task Pids_during_a_create_waits_for_it_as_containerd_2_loading_the_shim_after_a_restart_needs()
    {
        var vmBooting = new TaskCompletionSource();
        _backend.DuringCreate = () => vmBooting.Task;
        var create = CreateAsync();
        var pids = _service.PidsAsync(new PidsRequest { Id = "c1" }, None);
        await Task.Delay(200);
        Assert.False(pids.IsCompleted); // an answer now would be empty or NotFound: containerd 2.x would drop the shim

        vmBooting.SetResult();
        await create.WaitAsync(Patience);
        Assert.Equal(4242u, Assert.Single((await pids.WaitAsync(Patience)).Processes).Pid);
    }

    [Fact]
    public async Task Pids_during_a_create_that_fails_answers_NotFound()
    {
        var vmBooting = new TaskCompletionSource();
        _backend.DuringCreate = () => vmBooting.Task;
        _backend.CreateFailure = new SandboxBackendException(TtrpcStatusCode.Unavailable, "the VM did not boot");
        var create = CreateAsync();
        var pids = _service.PidsAsync(new PidsRequest { Id = "c1" }, None);

        vmBooting.SetResult();
        await Assert.ThrowsAsync<TtrpcException>(() => create.WaitAsync(Patience));
        var e = await Assert.ThrowsAsync<TtrpcException>(() => pids.WaitAsync(Patience));
        Assert.Equal(TtrpcStatusCode.NotFound, e.Code);
    }

    [Theory]
    [InlineData("../../etc", "letters and digits")]
    [InlineData("a/b", "letters and digits")]
    [InlineData("with\nnewline", "letters and digits")]
    [InlineData("", "empty")]
    [InlineData("-leading-dash", "letters and digits")]
    public async Task Create_refuses_a_container_id_that_containerd_would_not_send_and_creates_nothing(string id, string reason)
    {
        var e = await FailsWith(TtrpcStatusCode.InvalidArgument, () => CreateAsync(id));

        Assert.Contains("container id", e.Message);
        Assert.Contains(reason, e.Message);
        Assert.DoesNotContain("\n", e.Message.Replace("\\n", ""));
        Assert.Empty(_backend.Calls);
        Assert.Empty(_rootfs.Mounted);
    }

    [Fact]
    public async Task Create_refuses_a_relative_bundle_path()
    {
        var e = await FailsWith(TtrpcStatusCode.InvalidArgument,
            () => _service.CreateAsync(new CreateTaskRequest { Id = "c1", Bundle = "../bundle" }, None));

        Assert.Contains("\"../bundle\" is not an absolute path", e.Message);
        Assert.Empty(_backend.Calls);
    }

    [Theory]
    [InlineData("c1", true)]
    [InlineData("k8s_pause.abc-123", true)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true)]
    [InlineData("a..b", false)]
    [InlineData("..", false)]
    [InlineData("a_", false)]
    public void Container_ids_follow_containerds_identifier_rule(string id, bool valid) =>
        Assert.Equal(valid, ContainerdIdentifier.Problem(id) is null);

    [Fact]
    public async Task An_init_killed_for_its_memory_limit_publishes_the_oom_event_before_the_exit()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        _backend.Exit("c1", "", 137, oomKilled: true);
        await _service.WaitAsync(new WaitRequest { Id = "c1" }, None).WaitAsync(Patience);

        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit" }, _events.Topics);
        Assert.Equal("c1", Assert.IsType<TaskOOM>(_events.Events[2].Message).ContainerId);
    }

    [Fact]
    public async Task Wait_called_before_Start_returns_the_exit_and_events_come_in_order()
    {
        await CreateAsync();
        var wait = _service.WaitAsync(new WaitRequest { Id = "c1" }, None);

        var started = await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        Assert.False(wait.IsCompleted);
        Assert.Equal(TaskStatus.Running, (await StateAsync()).Status);
        _backend.Exit("c1", "", 3);
        var waited = await wait.WaitAsync(Patience);

        Assert.Equal(4242u, started.Pid);
        Assert.Equal(3u, waited.ExitStatus);
        Assert.NotEqual(0, waited.ExitedAt.Seconds);
        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/exit" }, _events.Topics);
        var exit = Assert.IsType<TaskExit>(_events.Events[2].Message);
        Assert.Equal("c1", exit.Id); // the init's exit carries the container id as id
        Assert.Equal(4242u, exit.Pid);
        Assert.Equal(3u, exit.ExitStatus);
        var state = await StateAsync();
        Assert.Equal(TaskStatus.Stopped, state.Status);
        Assert.Equal(3u, state.ExitStatus);
    }

    [Fact]
    public async Task Concurrent_and_repeated_Waits_all_get_the_exit()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        var waits = Enumerable.Range(0, 5).Select(_ => _service.WaitAsync(new WaitRequest { Id = "c1" }, None)).ToArray();

        _backend.Exit("c1", "", 137);
        var results = await Task.WhenAll(waits).WaitAsync(Patience);
        var again = await _service.WaitAsync(new WaitRequest { Id = "c1" }, None);

        Assert.All(results, r => Assert.Equal(137u, r.ExitStatus));
        Assert.Equal(137u, again.ExitStatus);
        Assert.Single(_events.Topics, t => t == "/tasks/exit");
    }

    [Fact]
    public async Task Wait_is_cancelled_by_its_token_without_disturbing_others()
    {
        await CreateAsync();
        using var cancel = new CancellationTokenSource();
        var cancelled = _service.WaitAsync(new WaitRequest { Id = "c1" }, cancel.Token);
        var other = _service.WaitAsync(new WaitRequest { Id = "c1" }, None);

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        _backend.Exit("c1", "", 0);
        Assert.Equal(0u, (await other.WaitAsync(Patience)).ExitStatus);
    }

    [Fact]
    public async Task An_exit_during_Start_is_published_after_the_start_event()
    {
        await CreateAsync();
        _backend.DuringStart = async () =>
        {
            _backend.Exit("c1", "", 0); // the process ends before Start has returned
            await WaitForStatusAsync(TaskStatus.Stopped);
        };

        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        var waited = await _service.WaitAsync(new WaitRequest { Id = "c1" }, None).WaitAsync(Patience);

        Assert.Equal(0u, waited.ExitStatus);
        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/exit" }, _events.Topics);
    }

    [Fact]
    public async Task Kill_after_exit_is_NotFound_process_already_finished()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        await _service.KillAsync(new KillRequest { Id = "c1", Signal = 15 }, None);
        await _service.WaitAsync(new WaitRequest { Id = "c1" }, None).WaitAsync(Patience);

        var e = await FailsWith(TtrpcStatusCode.NotFound, () => _service.KillAsync(new KillRequest { Id = "c1", Signal = 9 }, None));
        Assert.Equal("process already finished", e.Message);
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.KillAsync(new KillRequest { Id = "c1", Signal = 9, All = true }, None));
        Assert.Equal(143u, (await StateAsync()).ExitStatus);
    }

    [Fact]
    public async Task Delete_requires_a_stopped_task_then_returns_the_exit_and_forgets_the_container()
    {
        await CreateAsync("c1", new Mount { Type = "overlay", Source = "overlay" });
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);

        await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.DeleteAsync(new DeleteRequest { Id = "c1" }, None));
        Assert.Equal(TaskStatus.Running, (await StateAsync()).Status);

        _backend.Exit("c1", "", 7);
        await WaitForStatusAsync(TaskStatus.Stopped);
        var deleted = await _service.DeleteAsync(new DeleteRequest { Id = "c1" }, None);

        Assert.Equal(7u, deleted.ExitStatus);
        Assert.Equal(4242u, deleted.Pid);
        Assert.Empty(_rootfs.Mounted);
        Assert.Contains("delete c1", _backend.Calls);
        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete" }, _events.Topics);
        var delete = Assert.IsType<TaskDelete>(_events.Events[3].Message);
        Assert.Equal("", delete.Id);
        Assert.Equal(7u, delete.ExitStatus);
        await FailsWith(TtrpcStatusCode.NotFound, () => StateAsync());
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.DeleteAsync(new DeleteRequest { Id = "c1" }, None));
    }

    [Fact]
    public async Task Deleting_a_never_started_task_kills_it_first()
    {
        await CreateAsync();
        var deleted = await _service.DeleteAsync(new DeleteRequest { Id = "c1" }, None);

        Assert.Equal(137u, deleted.ExitStatus);
        Assert.Equal(new[] { "create c1", "kill c1/ 9", "delete c1" }, _backend.Calls);
        Assert.Equal(0, _service.ContainerCount);
    }

    [Fact]
    public async Task Shutdown_keeps_the_shim_while_containers_remain()
    {
        await CreateAsync("c1");
        await CreateAsync("c2");

        await _service.ShutdownAsync(new ShutdownRequest { Id = "c1" });
        Assert.False(_service.ShutdownRequested.IsCompleted);

        await _service.DeleteAsync(new DeleteRequest { Id = "c1" }, None);
        await _service.ShutdownAsync(new ShutdownRequest { Id = "c1" });
        Assert.False(_service.ShutdownRequested.IsCompleted);

        await _service.DeleteAsync(new DeleteRequest { Id = "c2" }, None);
        await _service.ShutdownAsync(new ShutdownRequest { Id = "c2" });
        Assert.True(_service.ShutdownRequested.IsCompleted);
    }

    [Fact]
    public async Task Exec_lifecycle_publishes_added_started_exit_and_keeps_the_exit_until_delete()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        var spec = new Any { TypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/Process", Value = ByteString.CopyFromUtf8("""{"args":["sh"],"cwd":"/"}""") };

        await _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = spec, Stdout = "/fifo/e1" });
        Assert.Equal(TaskStatus.Created, (await StateAsync("c1", "e1")).Status);
        Assert.Equal(0u, (await StateAsync("c1", "e1")).Pid);
        await FailsWith(TtrpcStatusCode.AlreadyExists, () => _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = spec }));
        await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.KillAsync(new KillRequest { Id = "c1", ExecId = "e1", Signal = 9 }, None));

        var wait = _service.WaitAsync(new WaitRequest { Id = "c1", ExecId = "e1" }, None);
        var started = await _service.StartAsync(new StartRequest { Id = "c1", ExecId = "e1" }, None);
        _backend.Exit("c1", "e1", 4);
        var waited = await wait.WaitAsync(Patience);

        Assert.Equal(4u, waited.ExitStatus);
        Assert.Equal(TaskStatus.Stopped, (await StateAsync("c1", "e1")).Status);
        Assert.Equal(TaskStatus.Running, (await StateAsync()).Status);
        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit" }, _events.Topics);
        var exit = Assert.IsType<TaskExit>(_events.Events[4].Message);
        Assert.Equal("e1", exit.Id);
        Assert.Equal(started.Pid, exit.Pid);
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.KillAsync(new KillRequest { Id = "c1", ExecId = "e1", Signal = 9 }, None));

        var deleted = await _service.DeleteAsync(new DeleteRequest { Id = "c1", ExecId = "e1" }, None);
        Assert.Equal(4u, deleted.ExitStatus);
        Assert.Equal(5, _events.Topics.Count); // deleting an exec publishes nothing
        await FailsWith(TtrpcStatusCode.NotFound, () => StateAsync("c1", "e1"));
    }

    [Fact]
    public async Task Exec_is_refused_with_clear_errors()
    {
        await CreateAsync();
        var spec = new Any { TypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/Process", Value = ByteString.CopyFromUtf8("""{"args":["sh"]}""") };

        await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = spec }));
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.ExecAsync(new ExecProcessRequest { Id = "nope", ExecId = "e1", Spec = spec }));
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "", Spec = spec }));
        await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1" }));
        var notJson = new Any { TypeUrl = spec.TypeUrl, Value = ByteString.CopyFromUtf8("args: [sh]") };
        await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = notJson }));
    }

    [Fact]
    public async Task Create_refuses_duplicates_and_undoes_everything_when_the_backend_fails()
    {
        await CreateAsync("c1");
        await FailsWith(TtrpcStatusCode.AlreadyExists, () => CreateAsync("c1"));

        _backend.CreateFailure = new IOException("runc create failed: no such image");
        var e = await FailsWith(TtrpcStatusCode.Unknown, () => CreateAsync("c2", new Mount { Type = "overlay", Source = "overlay" }));
        Assert.Contains("create container c2", e.Message);
        Assert.Contains("no such image", e.Message);
        Assert.DoesNotContain("/run/b/c2/rootfs", _rootfs.Mounted);
        await FailsWith(TtrpcStatusCode.NotFound, () => StateAsync("c2"));
        Assert.Equal(1, _service.ContainerCount);
    }

    [Fact]
    public async Task Unsupported_rootfs_type_is_InvalidArgument_naming_the_type()
    {
        var e = await FailsWith(TtrpcStatusCode.InvalidArgument, () => CreateAsync("c1", new Mount { Type = "zfs", Source = "pool/x" }));
        Assert.Contains("zfs", e.Message);
        Assert.Equal(0, _service.ContainerCount);
    }

    [Fact]
    public async Task Pause_and_resume_change_the_status_and_publish_events()
    {
        await CreateAsync();
        await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.PauseAsync(new PauseRequest { Id = "c1" }, None));
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);

        await _service.PauseAsync(new PauseRequest { Id = "c1" }, None);
        Assert.Equal(TaskStatus.Paused, (await StateAsync()).Status);
        await _service.ResumeAsync(new ResumeRequest { Id = "c1" }, None);
        Assert.Equal(TaskStatus.Running, (await StateAsync()).Status);

        Assert.Equal(new[] { "/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed" }, _events.Topics);
    }

    [Fact]
    public async Task Connect_returns_the_shim_pid_and_the_task_pid()
    {
        await CreateAsync();
        var connected = await _service.ConnectAsync(new ConnectRequest { Id = "c1" });
        var unknown = await _service.ConnectAsync(new ConnectRequest { Id = "nope" });

        Assert.Equal((uint)Environment.ProcessId, connected.ShimPid);
        Assert.Equal(1001u, connected.TaskPid);
        Assert.Equal(0u, unknown.TaskPid);
    }

    [Fact]
    public async Task Checkpoint_is_Unimplemented()
    {
        await CreateAsync();
        await FailsWith(TtrpcStatusCode.Unimplemented, () => _service.CheckpointAsync(new CheckpointTaskRequest { Id = "c1" }));
    }

    private static UpdateTaskRequest Update(string id, string json, string typeUrl = ContainerResources.TypeUrl) => new()
    {
        Id = id,
        Resources = new Google.Protobuf.WellKnownTypes.Any { TypeUrl = typeUrl, Value = Google.Protobuf.ByteString.CopyFromUtf8(json) },
    };

    [Fact]
    public async Task Update_passes_only_the_fields_it_sets_to_the_backend()
    {
        await CreateAsync();
        await _service.UpdateAsync(Update("c1", """{"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000},"devices":[{"allow":false,"access":"rwm"}]}"""), None);
        Assert.Contains("""update c1 {"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000}}""", _backend.Calls);
    }

    [Fact]
    public async Task Update_with_bad_resources_is_InvalidArgument_naming_the_field_and_the_service_keeps_serving()
    {
        await CreateAsync();
        var negative = await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.UpdateAsync(Update("c1", """{"memory":{"limit":-5}}"""), None));
        Assert.Contains("container c1", negative.Message);
        Assert.Contains("memory.limit is -5", negative.Message);
        var garbage = await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.UpdateAsync(Update("c1", "{not json"), None));
        Assert.Contains("not valid JSON", garbage.Message);
        var wrongType = await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.UpdateAsync(Update("c1", "{}", "example.com/Other"), None));
        Assert.Contains("example.com/Other", wrongType.Message);
        await FailsWith(TtrpcStatusCode.InvalidArgument, () => _service.UpdateAsync(new UpdateTaskRequest { Id = "c1" }, None));
        Assert.DoesNotContain(_backend.Calls, c => c.StartsWith("update", StringComparison.Ordinal));

        await _service.UpdateAsync(Update("c1", """{"pids":{"limit":64}}"""), None);
        Assert.Contains("""update c1 {"pids":{"limit":64}}""", _backend.Calls);
    }

    [Fact]
    public async Task Update_of_an_exited_container_is_FailedPrecondition_and_of_an_unknown_one_NotFound()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        _backend.Exit("c1", "", 0);
        await _service.WaitAsync(new WaitRequest { Id = "c1" }, None).WaitAsync(Patience);
        var exited = await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.UpdateAsync(Update("c1", """{"pids":{"limit":64}}"""), None));
        Assert.Contains("update container c1: it is stopped", exited.Message);
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.UpdateAsync(Update("nope", """{"pids":{"limit":64}}"""), None));
    }

    [Fact]
    public async Task Stats_return_the_backends_metrics_and_an_unknown_container_is_NotFound()
    {
        await CreateAsync();
        var stats = await _service.StatsAsync(new StatsRequest { Id = "c1" });
        Assert.Equal("fake.Metrics", stats.Stats.TypeUrl);
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.StatsAsync(new StatsRequest { Id = "nope" }));
    }

    [Fact]
    public async Task Unknown_ids_are_NotFound()
    {
        await FailsWith(TtrpcStatusCode.NotFound, () => StateAsync("nope"));
        await CreateAsync();
        await FailsWith(TtrpcStatusCode.NotFound, () => StateAsync("c1", "no-exec"));
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.WaitAsync(new WaitRequest { Id = "nope" }, None));
        await FailsWith(TtrpcStatusCode.NotFound, () => _service.StartAsync(new StartRequest { Id = "nope" }, None));
    }

    [Fact]
    public async Task A_lost_process_is_reported_as_exit_255_instead_of_hanging_Wait()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        _backend.FailWait("c1", "");

        var waited = await _service.WaitAsync(new WaitRequest { Id = "c1" }, None).WaitAsync(Patience);

        Assert.Equal(255u, waited.ExitStatus);
        lock (_log)
            Assert.Contains(_log, line => line.Contains("agent connection lost"));
    }

    [Fact]
    public async Task Start_twice_is_FailedPrecondition()
    {
        await CreateAsync();
        await _service.StartAsync(new StartRequest { Id = "c1" }, None);
        await FailsWith(TtrpcStatusCode.FailedPrecondition, () => _service.StartAsync(new StartRequest { Id = "c1" }, None));
    }

    [Fact]
    public async Task Served_over_ttrpc_the_service_answers_containerd_calls()
    {
        var registry = new TtrpcServiceRegistry();
        _service.RegisterOn(registry);
        var dir = Directory.CreateTempSubdirectory("tsk-").FullName;
        await using var server = new TtrpcServer(registry);
        server.Start(Path.Combine(dir, "s"));
        await using var client = await TtrpcClient.ConnectAsync(Path.Combine(dir, "s"), None);

        var created = await client.CallAsync(TaskService.ServiceName, "Create", new CreateTaskRequest { Id = "c1", Bundle = "/b" }, CreateTaskResponse.Parser);
        var state = await client.CallAsync(TaskService.ServiceName, "State", new StateRequest { Id = "c1" }, StateResponse.Parser);
        var missing = await Assert.ThrowsAsync<TtrpcException>(() =>
            client.CallAsync(TaskService.ServiceName, "State", new StateRequest { Id = "zz" }, StateResponse.Parser));

        Assert.Equal(1001u, created.Pid);
        Assert.Equal(TaskStatus.Created, state.Status);
        Assert.Equal(TtrpcStatusCode.NotFound, missing.Code);
        Directory.Delete(dir, recursive: true);
    }
}
