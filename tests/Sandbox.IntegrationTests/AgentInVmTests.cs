using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.IntegrationTests;

/// <summary>The agent in a real VM (TCG here), reached over vsock, running real containers with crun.</summary>
[Collection(SharedVmCollection.Name)]
public sealed class AgentInVmTests(SharedVmFixture fixture)
{
    private static CancellationToken Timeout => new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;
    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(30);
    private Sandbox.Agent.Protocol.Agent.AgentClient Agent => fixture.Vm.Agent.Client;

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task Health_answers_over_vsock()
    {
        var health = await Agent.HealthAsync(new HealthRequest(), deadline: Deadline);
        Assert.False(string.IsNullOrEmpty(health.AgentVersion));
    }

    [Fact]
    public async Task After_boot_qemu_pages_out_its_copies_of_the_kernel_and_initrd_and_containers_still_run()
    {
        // How much is released depends on the other VMs of the test run (pages they map too stay resident):
        // QemuAdapterVmTests checks the amount on a VM of its own; here, that the boot path does it and the guest runs on.
        var released = await fixture.Vm.BootImagesReleased.WaitAsync(Timeout);
        Assert.Matches(@"^boot images paged out of QEMU: 2 mapping\(s\), resident [0-9.]+ MiB -> [0-9.]+ MiB$", released);
        var result = await new GuestContainer(fixture.Vm, NewId("after-release")).RunAsync(["true"], stdin: null, Timeout);
        Assert.Equal(0, result.ExitStatus);
    }

    [Fact]
    public async Task Container_prints_hi_and_exits_7()
    {
        var result = await new GuestContainer(fixture.Vm, NewId("hi"))
            .RunAsync(["sh", "-c", "echo hi; exit 7"], stdin: null, Timeout);
        Assert.Equal("hi\n", result.StdoutText);
        Assert.Equal("", result.StderrText);
        Assert.Equal(7, result.ExitStatus);
    }

    [Fact]
    public async Task Stderr_is_separate_from_stdout()
    {
        var result = await new GuestContainer(fixture.Vm, NewId("err"))
            .RunAsync(["sh", "-c", "echo out; echo err >&2"], stdin: null, Timeout);
        Assert.Equal("out\n", result.StdoutText);
        Assert.Equal("err\n", result.StderrText);
        Assert.Equal(0, result.ExitStatus);
    }

    [Fact]
    public async Task Guest_kernel_differs_from_the_host_kernel()
    {
        var result = await new GuestContainer(fixture.Vm, NewId("uname"))
            .RunAsync(["uname", "-r"], stdin: null, Timeout);
        var guestRelease = result.StdoutText.Trim();
        var hostRelease = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        Assert.Equal(0, result.ExitStatus);
        Assert.NotEqual("", guestRelease);
        Assert.NotEqual(hostRelease, guestRelease);
        // the default guest image boots our own kernel (images/build-kernel.sh)
        Assert.Equal(File.ReadAllText(Path.Combine(GuestAssets.Locate().Directory, "kernel-release")).Trim(), guestRelease);
        var info = await Agent.GetGuestInfoAsync(new GetGuestInfoRequest(), deadline: Deadline);
        Assert.Equal(info.KernelRelease, guestRelease);
    }

    [Fact]
    public async Task Container_killed_with_SIGKILL_reports_137()
    {
        var container = new GuestContainer(fixture.Vm, NewId("kill"));
        await container.CreateAsync(OciSpecs.Busybox(["sh", "-c", "echo started; exec sleep 600"]), stdin: false, Timeout);
        try
        {
            var stdout = new MemoryStream();
            var reading = new Sandbox.Runtime.Agent.GuestProcessStdio(Agent, container.Id).CopyStdoutToAsync(stdout, Timeout);
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = container.Id }, deadline: Deadline);
            await WaitForOutputAsync(stdout, "started\n");
            await Agent.SignalProcessAsync(new SignalProcessRequest { ContainerId = container.Id, Signal = 9 }, deadline: Deadline);
            var exit = await container.WaitAsync(Timeout);
            await reading;
            Assert.Equal(137, exit.ExitStatus);
            Assert.True(exit.ExitedAtUnixNanos > 0);
            // A second, late waiter gets the same answer at once.
            Assert.Equal(137, (await container.WaitAsync(Timeout)).ExitStatus);
        }
        finally
        {
            await container.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Stdin_reaches_the_container()
    {
        var input = Encoding.ASCII.GetBytes("line one\nline two\n");
        var result = await new GuestContainer(fixture.Vm, NewId("stdin"))
            .RunAsync(["sh", "-c", "wc -l; echo done"], input, Timeout);
        Assert.Equal(0, result.ExitStatus);
        Assert.Equal("2\ndone\n", result.StdoutText);
    }

    [Fact]
    public async Task Five_megabytes_of_output_arrive_byte_exact()
    {
        // 5 MiB of a non-repeating pattern: the numbers 1.. each on its own line, cut to size in the guest.
        const int size = 5 * 1024 * 1024;
        var result = await new GuestContainer(fixture.Vm, NewId("bulk"))
            .RunAsync(["sh", "-c", $"seq 1 1000000 | head -c {size}"], stdin: null, Timeout);
        Assert.Equal(0, result.ExitStatus);
        var expected = new StringBuilder();
        for (int i = 1; expected.Length < size; i++)
            expected.Append(i).Append('\n');
        var expectedBytes = Encoding.ASCII.GetBytes(expected.ToString(0, size));
        Assert.Equal(size, result.Stdout.Length);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(expectedBytes)), Convert.ToHexString(SHA256.HashData(result.Stdout)));
    }

    [Fact]
    public async Task Unknown_container_is_NotFound_and_the_agent_keeps_serving()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => Agent.StartContainerAsync(
            new StartContainerRequest { ContainerId = "no-such-container" }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("no-such-container", e.Status.Detail);
        await Agent.HealthAsync(new HealthRequest(), deadline: Deadline);
    }

    [Fact]
    public async Task Malformed_spec_is_InvalidArgument_and_a_duplicate_id_is_AlreadyExists()
    {
        var id = NewId("bad");
        var bad = await Assert.ThrowsAsync<RpcException>(() => Agent.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = id,
            OciSpecJson = ByteString.CopyFromUtf8("{ this is not json"),
            RootfsPath = "/run/sandbox/shared/nothing/rootfs",
        }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);

        var container = new GuestContainer(fixture.Vm, id);
        await container.CreateAsync(OciSpecs.Busybox(["true"]), stdin: false, Timeout);
        try
        {
            var duplicate = await Assert.ThrowsAsync<RpcException>(() => Agent.CreateContainerAsync(new CreateContainerRequest
            {
                ContainerId = id,
                OciSpecJson = ByteString.CopyFromUtf8(OciSpecs.Busybox(["true"])),
                RootfsPath = fixture.Vm.GuestPathOf(container.HostRootfs),
            }, deadline: Deadline).ResponseAsync);
            Assert.Equal(StatusCode.AlreadyExists, duplicate.StatusCode);
        }
        finally
        {
            await container.RemoveAsync(CancellationToken.None);
        }
        await Agent.HealthAsync(new HealthRequest(), deadline: Deadline);
    }

    [Fact]
    public async Task Exec_runs_a_second_process_in_a_running_container()
    {
        var container = new GuestContainer(fixture.Vm, NewId("exec"));
        await container.CreateAsync(OciSpecs.Busybox(["sleep", "600"]), stdin: false, Timeout);
        try
        {
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = container.Id }, deadline: Deadline);
            await Agent.ExecProcessAsync(new ExecProcessRequest
            {
                ContainerId = container.Id,
                ExecId = "e1",
                ProcessJson = ByteString.CopyFromUtf8(OciSpecs.Process(["sh", "-c", "echo from-exec; exit 5"])),
            }, deadline: Deadline);
            var stdout = new MemoryStream();
            await new Sandbox.Runtime.Agent.GuestProcessStdio(Agent, container.Id, "e1").CopyStdoutToAsync(stdout, Timeout);
            Assert.Equal(5, (await container.WaitAsync(Timeout, "e1")).ExitStatus);
            Assert.Equal("from-exec\n", Encoding.UTF8.GetString(stdout.ToArray()));
        }
        finally
        {
            await container.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Container_and_exec_processes_keep_address_space_randomization()
    {
        // The agent starts crun with a fixed address layout (faster under TCG); container processes must not inherit it.
        const string Show = "cat /proc/self/personality; cat /proc/sys/kernel/randomize_va_space";
        var container = new GuestContainer(fixture.Vm, NewId("aslr"));
        await container.CreateAsync(OciSpecs.Busybox(["sh", "-c", Show + "; exec sleep 600"]), stdin: false, Timeout);
        try
        {
            var initOutput = new MemoryStream();
            _ = new Sandbox.Runtime.Agent.GuestProcessStdio(Agent, container.Id).CopyStdoutToAsync(initOutput, Timeout);
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = container.Id }, deadline: Deadline);
            await WaitForOutputAsync(initOutput, "00000000\n2\n");
            await Agent.ExecProcessAsync(new ExecProcessRequest
            {
                ContainerId = container.Id,
                ExecId = "e1",
                ProcessJson = ByteString.CopyFromUtf8(OciSpecs.Process(["sh", "-c", Show])),
            }, deadline: Deadline);
            var execOutput = new MemoryStream();
            await new Sandbox.Runtime.Agent.GuestProcessStdio(Agent, container.Id, "e1").CopyStdoutToAsync(execOutput, Timeout);
            Assert.Equal("00000000\n2\n", Encoding.UTF8.GetString(execOutput.ToArray()));
        }
        finally
        {
            await container.RemoveAsync(CancellationToken.None);
        }
    }

    private static async Task WaitForOutputAsync(MemoryStream stream, string expected)
    {
        for (int i = 0; i < 600; i++)
        {
            if (Encoding.UTF8.GetString(stream.ToArray()).Contains(expected))
                return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"container output never contained '{expected.Trim()}'");
    }
}
