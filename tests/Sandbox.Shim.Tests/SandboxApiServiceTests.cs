using Containerd.Runtime.Sandbox.V1;
using Cri.Runtime.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.SandboxApi;
using Sandbox.Shim.Vm;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

/// <summary>containerd's Sandbox API as the shim serves it, with a backend that records what it is asked.</summary>
public class SandboxApiServiceTests
{
    private readonly FakePodSandboxBackend _backend = new();
    private readonly List<string> _log = new();

    private SandboxApiService Service() => new(_backend, "vm", _log.Add);

    private static CreateSandboxRequest Create(string id, PodSandboxConfig? config = null) => new()
    {
        SandboxId = id,
        BundlePath = "/run/containerd/bundle/" + id,
        NetnsPath = "/var/run/netns/cni-1234",
        Options = config is null ? null : new Any { TypeUrl = SandboxApiService.PodSandboxConfigType, Value = config.ToByteString() },
    };

    [Fact]
    public async Task Create_start_stop_wait_and_shutdown_run_the_sandbox_through_the_backend()
    {
        var service = Service();
        await service.CreateAsync(Create("pod1", new PodSandboxConfig { Hostname = "web-0" }));
        Assert.True(service.HoldsSandbox);

        var started = await service.StartAsync(new StartSandboxRequest { SandboxId = "pod1" }, CancellationToken.None);
        Assert.Equal(4242u, started.Pid);
        var spec = Assert.Single(_backend.Started);
        Assert.Equal(("pod1", "web-0", "/var/run/netns/cni-1234"), (spec.SandboxId, spec.Hostname, spec.NetworkNamespacePath));
        var status = await service.StatusAsync(new SandboxStatusRequest { SandboxId = "pod1", Verbose = true });
        Assert.Equal("SANDBOX_READY", status.State);
        Assert.Contains("\"networkNamespace\":\"/var/run/netns/cni-1234\"", status.Info["info"]);

        var wait = service.WaitAsync(new WaitSandboxRequest { SandboxId = "pod1" }, CancellationToken.None);
        Assert.False(wait.IsCompleted);
        await service.StopAsync(new StopSandboxRequest { SandboxId = "pod1", TimeoutSecs = 5 }, CancellationToken.None);
        Assert.Equal(0u, (await wait.WaitAsync(TimeSpan.FromSeconds(5))).ExitStatus);
        Assert.Equal("SANDBOX_NOTREADY", (await service.StatusAsync(new SandboxStatusRequest { SandboxId = "pod1" })).State);

        await service.ShutdownAsync(new ShutdownSandboxRequest { SandboxId = "pod1" }, CancellationToken.None);
        Assert.True(service.ShutdownRequested.IsCompleted);
        Assert.False(service.HoldsSandbox);
    }

    [Fact]
    public void The_pods_resources_size_the_vm_as_the_sandbox_annotations_do()
    {
        var config = new PodSandboxConfig
        {
            Linux = new LinuxPodSandboxConfig { Resources = new LinuxContainerResources { CpuQuota = 150000, CpuPeriod = 100000, MemoryLimitInBytes = 128L << 20 } },
        };
        var spec = SandboxApiService.SpecOf(Create("pod2", config));

        Assert.Equal("150000", spec.Annotations[PodVmSize.CpuQuotaAnnotation]);
        Assert.Equal("100000", spec.Annotations[PodVmSize.CpuPeriodAnnotation]);
        Assert.Equal((128L << 20).ToString(), spec.Annotations[PodVmSize.MemoryAnnotation]);
    }

    [Fact]
    public void A_pod_asking_for_the_host_network_is_refused_with_InvalidArgument_naming_hostNetwork()
    {
        var config = new PodSandboxConfig
        {
            Linux = new LinuxPodSandboxConfig
            {
                SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } },
            },
        };
        var refused = Assert.Throws<TtrpcException>(() => SandboxApiService.SpecOf(Create("pod3", config)));
        Assert.Equal(TtrpcStatusCode.InvalidArgument, refused.Code);
        Assert.Contains("create sandbox pod3", refused.Message);
        Assert.Contains("hostNetwork", refused.Message);
    }

    [Fact]
    public async Task A_call_for_a_sandbox_this_shim_does_not_run_is_not_found_and_names_both()
    {
        var service = Service();
        var none = await Assert.ThrowsAsync<TtrpcException>(() => service.StartAsync(new StartSandboxRequest { SandboxId = "ghost" }, CancellationToken.None));
        Assert.Equal(TtrpcStatusCode.NotFound, none.Code);
        Assert.Contains("no sandbox was created in this shim", none.Message);

        await service.CreateAsync(Create("pod3"));
        var other = await Assert.ThrowsAsync<TtrpcException>(() => service.PingAsync(new PingRequest { SandboxId = "ghost" }));
        Assert.Equal(TtrpcStatusCode.NotFound, other.Code);
        Assert.Contains("sandbox ghost", other.Message);
        Assert.Contains("runs sandbox pod3 only", other.Message);
        await service.PingAsync(new PingRequest { SandboxId = "pod3" }); // and the shim keeps serving
    }

    [Fact]
    public async Task Bad_input_gets_a_clear_error_and_leaves_the_service_consistent()
    {
        var service = Service();
        Assert.Equal(TtrpcStatusCode.InvalidArgument, (await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(Create("")))).Code);

        var wrongType = Create("pod4");
        wrongType.Options = new Any { TypeUrl = "example.com/Other", Value = ByteString.CopyFromUtf8("x") };
        var typeError = await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(wrongType));
        Assert.Equal(TtrpcStatusCode.InvalidArgument, typeError.Code);
        Assert.Contains("example.com/Other", typeError.Message);

        var garbage = Create("pod4");
        garbage.Options = new Any { TypeUrl = SandboxApiService.PodSandboxConfigType, Value = ByteString.CopyFrom(0xff, 0xff, 0xff) };
        Assert.Contains("do not parse", (await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(garbage))).Message);

        await service.CreateAsync(Create("pod4")); // none of the refusals left a sandbox behind
        Assert.Equal(TtrpcStatusCode.AlreadyExists, (await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(Create("pod4")))).Code);
        Assert.Equal(TtrpcStatusCode.FailedPrecondition, (await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(Create("pod5")))).Code);
    }

    [Fact]
    public async Task The_runc_backend_has_no_sandbox_api_and_says_so()
    {
        var service = new SandboxApiService(null, "runc", _log.Add);
        var error = await Assert.ThrowsAsync<TtrpcException>(() => service.CreateAsync(Create("pod6")));
        Assert.Equal(TtrpcStatusCode.Unimplemented, error.Code);
        Assert.Contains("runc backend", error.Message);
    }

    [Fact]
    public async Task Metrics_are_the_cpu_time_and_memory_of_the_sandboxs_vm_process()
    {
        _backend.Pid = (uint)Environment.ProcessId; // this test process stands in for QEMU
        var service = Service();
        await service.CreateAsync(Create("pod8"));
        Assert.Equal(TtrpcStatusCode.FailedPrecondition,
            (await Assert.ThrowsAsync<TtrpcException>(() => service.MetricsAsync(new SandboxMetricsRequest { SandboxId = "pod8" }))).Code);
        await service.StartAsync(new StartSandboxRequest { SandboxId = "pod8" }, CancellationToken.None);

        var response = await service.MetricsAsync(new SandboxMetricsRequest { SandboxId = "pod8" });

        Assert.Equal("pod8", response.Metrics.Id);
        Assert.Equal(SandboxApiService.MetricsTypeUrl, response.Metrics.Data.TypeUrl);
        var metrics = global::Containerd.Cgroups.V1.Metrics.Parser.ParseFrom(response.Metrics.Data.Value);
        Assert.True(metrics.Cpu.Usage.Total > 0);
        Assert.Equal(metrics.Cpu.Usage.User + metrics.Cpu.Usage.Kernel, metrics.Cpu.Usage.Total);
        Assert.InRange(metrics.Memory.Usage.Usage, 10UL << 20, 4UL << 30); // a .NET test host's RSS
    }

    [Fact]
    public void Process_usage_is_read_past_a_command_name_with_spaces_and_parentheses()
    {
        // /proc/PID/stat: pid (comm) state ppid ... utime (14) stime (15) ...
        string stat = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 1 2";
        var usage = HostProcessUsage.Parse(stat, "Name:\tqemu\nVmRSS:\t  204800 kB\nThreads:\t3\n");

        Assert.Equal(2_500_000_000UL, usage.UserNanoseconds);
        Assert.Equal(750_000_000UL, usage.KernelNanoseconds);
        Assert.Equal(204800UL * 1024, usage.ResidentBytes);
        Assert.Throws<FormatException>(() => HostProcessUsage.Parse("garbage", ""));
    }

    [Fact]
    public async Task A_sandbox_whose_vm_dies_reports_137_to_wait_and_not_ready_to_status()
    {
        var service = Service();
        await service.CreateAsync(Create("pod7"));
        await service.StartAsync(new StartSandboxRequest { SandboxId = "pod7" }, CancellationToken.None);

        _backend.Exit.SetResult(137);

        var wait = await service.WaitAsync(new WaitSandboxRequest { SandboxId = "pod7" }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(137u, wait.ExitStatus);
        Assert.Equal("SANDBOX_NOTREADY", (await service.StatusAsync(new SandboxStatusRequest { SandboxId = "pod7" })).State);
    }
}

internal sealed class FakePodSandboxBackend : IPodSandboxBackend
{
    public List<PodSandboxSpec> Started { get; } = new();

    public uint Pid { get; set; } = 4242;

    public TaskCompletionSource<uint> Exit { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<StartedPodSandbox> StartPodSandboxAsync(PodSandboxSpec spec, CancellationToken cancellationToken)
    {
        Started.Add(spec);
        return Task.FromResult(new StartedPodSandbox(Pid, Exit.Task));
    }

    public Task StopPodSandboxAsync(string sandboxId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Exit.TrySetResult(0);
        return Task.CompletedTask;
    }
}
