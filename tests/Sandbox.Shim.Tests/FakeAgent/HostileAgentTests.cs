using System.Net.Sockets;
using Containerd.Task.V2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Sandbox.Agent.Server;
using Sandbox.Fuzzing;
using Sandbox.Runtime.Configuration;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Tasks;
using Sandbox.Shim.Vm;
using Sandbox.Ttrpc;
using Xunit.Abstractions;

namespace Sandbox.Shim.Tests.FakeAgent;

/// <summary>
/// The shim's handling of malformed agent answers: the real task service and VM backend drive a container's whole life
/// against <see cref="HostileAgent"/> (behind a fake hypervisor and a hybrid vsock front), one sandbox per input. Every
/// call must end within its bound, with success or a TtrpcException whose message says what failed; an exception the
/// shim did not expect (one that is neither the backend's nor gRPC's) is a bug; and once the task is deleted and the
/// shim stopped, nothing may remain: no state directory, no mount below it, no VM process.
/// </summary>
public sealed class HostileAgentTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan CallBound = TimeSpan.FromSeconds(30);
    private readonly string _directory = Directory.CreateTempSubdirectory("hostile-").FullName;
    private readonly List<string> _log = new();

    private string StateRoot => Path.Combine(_directory, "state");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(StateRoot);
        File.WriteAllText(Path.Combine(_directory, "vmlinux"), "");
        File.WriteAllText(Path.Combine(_directory, "initrd"), "");
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private SandboxConfiguration Configuration() => SandboxConfigurationParser.Parse($"""
        [hypervisor.qemu]
        kernel = "{Path.Combine(_directory, "vmlinux")}"
        initrd = "{Path.Combine(_directory, "initrd")}"
        [agent]
        ready_timeout = 5
        rpc_timeout = 5
        liveness_timeout = 0
        [runtime]
        state_root = "{StateRoot}"
        sandbox_cgroup = false
        """, Path.Combine(_directory, "configuration.toml"));

    [Fact]
    public async Task Hostile_answers_give_clear_errors_and_leave_nothing_behind()
    {
        var run = new FuzzRun("hostile agent", iterations: 24, budget: TimeSpan.FromSeconds(120));
        var outcomes = new SortedDictionary<string, int>();
        await run.RunAsync(async fuzzCase =>
        {
            double hostility = fuzzCase.Random.NextDouble() * 0.4;
            string id = $"hostile-{fuzzCase.Iteration}";
            fuzzCase.Input = $"container {id}, hostility {hostility:0.00}, agent answers from the iteration's random source";
            foreach (var (call, outcome) in await LiveAsync(id, new HostileAgent(fuzzCase.Random, hostility)))
                outcomes[$"{call} {outcome}"] = outcomes.GetValueOrDefault($"{call} {outcome}") + 1;
            Assert.DoesNotContain(Directory.GetFileSystemEntries(StateRoot), e => Path.GetFileName(e) != Sandbox.Runtime.PostMortem.PostMortemStore.DirectoryName);
        });
        output.WriteLine(string.Join("\n", _log.Where(l => l.StartsWith("create failed")).Take(3)));
        output.WriteLine($"seed {run.Seed}: {run.Completed} sandboxes\n" + string.Join("\n", outcomes.Select(o => $"  {o.Key}: {o.Value}")));
        Assert.True(outcomes.Keys.Any(k => k.StartsWith("Start OK", StringComparison.Ordinal)), "no container ever started: the agent is too hostile to test the later calls");
        Assert.True(run.Completed >= 8, $"only {run.Completed} sandboxes within the time budget");
    }

    /// <summary>One container's life through the task service, each call bounded; returns each call's outcome.</summary>
    private async Task<List<(string Call, string Outcome)>> LiveAsync(string id, HostileAgent agent)
    {
        string agentSocket = Path.Combine(_directory, "agent.sock");
        File.Delete(agentSocket);
        await using var server = new AgentServer(new UnixDomainSocketEndPoint(agentSocket), binder => Agent.Protocol.Agent.BindService(binder, agent), Log);
        await server.StartAsync(CancellationToken.None);
        var backend = new VmSandboxBackend(Configuration(), () => new FakeHypervisor(agentSocket), "fuzz", Log);
        var service = new TaskService(backend, new RecordingPublisher(), new FakeRootfsMounter(), Log);

        string bundle = Path.Combine(_directory, "bundles", id);
        Directory.CreateDirectory(Path.Combine(bundle, "rootfs"));
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"),
            """{"ociVersion":"1.1.0","process":{"args":["sleep","10"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"ipc"},{"type":"uts"}]}}""");

        var outcomes = new List<(string, string)>();
        async Task CallAsync(string name, Func<CancellationToken, Task> call)
        {
            using var bound = new CancellationTokenSource(CallBound);
            try
            {
                await call(bound.Token).WaitAsync(CallBound + TimeSpan.FromSeconds(5));
                outcomes.Add((name, "OK"));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{name} of {id} did not return within {CallBound.TotalSeconds} s");
            }
            catch (OperationCanceledException) when (bound.IsCancellationRequested)
            {
                outcomes.Add((name, "Cancelled"));
            }
            catch (TtrpcException e)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message), $"{name}: {e.Code} without a message");
                Assert.True(e.InnerException is null or SandboxBackendException or RpcException or IOException or InvalidOperationException,
                    $"{name} of {id} failed with an exception the shim did not expect: {e.InnerException}");
                outcomes.Add((name, e.Code.ToString()));
                if (name == "Create") Log($"create failed: {e.Message}");
            }
        }

        await CallAsync("Create", ct => service.CreateAsync(new CreateTaskRequest { Id = id, Bundle = bundle }, ct));
        await CallAsync("Start", ct => service.StartAsync(new StartRequest { Id = id }, ct));
        await CallAsync("State", ct => service.StateAsync(new StateRequest { Id = id }, ct));
        await CallAsync("Pids", ct => service.PidsAsync(new PidsRequest { Id = id }, ct));
        await CallAsync("Stats", ct => service.StatsAsync(new StatsRequest { Id = id }));
        var process = new Any { TypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/Process", Value = ByteString.CopyFromUtf8("""{"args":["true"],"cwd":"/"}""") };
        await CallAsync("Exec", ct => service.ExecAsync(new ExecProcessRequest { Id = id, ExecId = "e1", Spec = process }));
        await CallAsync("StartExec", ct => service.StartAsync(new StartRequest { Id = id, ExecId = "e1" }, ct));
        await CallAsync("ResizePty", ct => service.ResizePtyAsync(new ResizePtyRequest { Id = id, Width = 80, Height = 24 }, ct));
        await CallAsync("Kill", ct => service.KillAsync(new KillRequest { Id = id, Signal = 9 }, ct));
        await CallAsync("Wait", ct => service.WaitAsync(new WaitRequest { Id = id }, ct));
        await CallAsync("Delete", ct => service.DeleteAsync(new DeleteRequest { Id = id }, ct));
        using (var stop = new CancellationTokenSource(CallBound))
            await service.StopAllAsync(stop.Token);
        await backend.ShutdownAsync(CancellationToken.None);
        return outcomes;
    }

    private void Log(string line)
    {
        lock (_log) _log.Add(line);
    }
}
