using System.Text;
using Grpc.Core;
using Sandbox.Ctl;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.IntegrationTests;

/// <summary>`sandboxctl exec`: the guest's debug console, on and off, against real VMs.</summary>
[Collection(SharedVmCollection.Name)]
public sealed class SandboxctlExecRefusalTests(SharedVmFixture fixture)
{
    [Fact]
    public async Task A_sandbox_started_without_debug_console_refuses_and_says_how_to_turn_it_on()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => RunAsync(fixture.Vm, ["true"], terminal: false));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("debug_console = true", e.Status.Detail);
        Assert.Contains("[agent]", e.Status.Detail);
    }

    internal static async Task<(int Status, string Stdout, string Stderr)> RunAsync(SandboxVm vm, string[] args, bool terminal,
        string stdin = "", (int, int) size = default)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var input = new MemoryStream(Encoding.UTF8.GetBytes(stdin));
        using var stdout = new MemoryStream();
        using var stderr = new MemoryStream();
        int status = await new DebugConsoleCall(vm.Agent.Client).RunAsync(args, terminal, size, input, stdout, stderr, null, timeout.Token);
        return (status, Encoding.UTF8.GetString(stdout.ToArray()), Encoding.UTF8.GetString(stderr.ToArray()));
    }
}

public sealed class SandboxctlExecTests
{
    [Fact]
    public async Task With_debug_console_on_commands_run_in_the_guest_with_their_output_input_exit_status_and_terminal()
    {
        var stateRoot = TestVm.NewStateRoot();
        SandboxVm? vm = null;
        try
        {
            using var boot = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            vm = await TestVm.BootAsync(stateRoot, "debugconsole", boot.Token, debugConsole: true);

            var (status, stdout, stderr) = await SandboxctlExecRefusalTests.RunAsync(vm, ["sh", "-c", "echo out; echo err >&2; exit 7"], terminal: false);
            Assert.Equal((7, "out\n", "err\n"), (status, stdout, stderr));

            (status, stdout, _) = await SandboxctlExecRefusalTests.RunAsync(vm, ["cat"], terminal: false, stdin: "hello from the host\n");
            Assert.Equal((0, "hello from the host\n"), (status, stdout));

            // The guest itself, not a container: the agent is PID 1 there.
            (status, stdout, _) = await SandboxctlExecRefusalTests.RunAsync(vm, ["cat", "/proc/1/comm"], terminal: false);
            Assert.Equal((0, "sandbox-agent\n"), (status, stdout));

            (status, stdout, _) = await SandboxctlExecRefusalTests.RunAsync(vm, ["sh", "-c", "tty; stty size"], terminal: true, size: (33, 99));
            Assert.Equal(0, status);
            Assert.Matches(@"^/dev/pts/\d+\r\n33 99\r\n$", stdout);

            var missing = await Assert.ThrowsAsync<RpcException>(() => SandboxctlExecRefusalTests.RunAsync(vm, ["no-such-program"], terminal: false));
            Assert.Contains("'no-such-program' is not found", missing.Status.Detail);

            Assert.Equal(vm.State.Path, SandboxLookup.Find(stateRoot, "debugconsole")?.Path);
            Assert.Null(SandboxLookup.Find(stateRoot, "unknown"));
        }
        finally
        {
            if (vm is not null)
                await vm.DisposeAsync();
            Directory.Delete(stateRoot, recursive: true);
        }
    }
}
