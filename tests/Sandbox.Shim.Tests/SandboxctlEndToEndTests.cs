using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>The sandboxctl executable against a sandbox that real containerd started with `ctr run`, with the debug
/// console on: list, metrics, gc, exec and logs find it by its container id, as text and as --json.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class SandboxctlEndToEndTests : IClassFixture<SandboxctlEndToEndTests.DebugConsoleFixture>
{
    public sealed class DebugConsoleFixture : IAsyncLifetime
    {
        public VmBackedContainerdFixture Vm { get; } = new() { Configuration = "[agent]\nready_timeout = 120\nrpc_timeout = 60\ndebug_console = true\n" };

        public Task InitializeAsync() => Vm.InitializeAsync();

        public Task DisposeAsync() => Vm.DisposeAsync();
    }

    private readonly VmBackedContainerdFixture _fixture;

    public SandboxctlEndToEndTests(DebugConsoleFixture fixture) => _fixture = fixture.Vm;

    [Fact]
    public async Task A_ctr_run_sandbox_is_listed_live_measured_left_alone_by_gc_and_reachable_by_exec()
    {
        const string id = "ctl-e2e";
        var containerd = _fixture.Containerd;
        await containerd.CtrOkAsync("run", "--fifo-dir", containerd.FifoDirectory, "-d", "--runtime", VmBackedContainerdFixture.Runtime,
            _fixture.Image, id, "sleep", "1000");
        try
        {
            var list = await SandboxctlAsync("list", "--json");
            Assert.Contains($"\"sandbox_id\": \"{id}\"", list.Stdout);
            Assert.Contains("\"state\": \"live\"", list.Stdout);

            var metrics = await SandboxctlAsync("metrics");
            Assert.Contains($"sandbox_up{{sandbox=\"{id}\"}} 1", metrics.Stdout);
            Assert.Contains($"sandbox_containers{{sandbox=\"{id}\"}} 1", metrics.Stdout);

            var gc = await SandboxctlAsync("gc");
            Assert.Contains("nothing to remove", gc.Stdout);
            Assert.Contains("1 live", gc.Stdout);

            var exec = await SandboxctlAsync("exec", id, "--", "sh", "-c", "cat /proc/1/comm; ls /run/sandbox/shared");
            Assert.Equal($"sandbox-agent\n{id}\n", exec.Stdout);

            var status = await SandboxctlAsync(expectedExit: 3, "exec", id, "--", "sh", "-c", "exit 3");
            Assert.Equal("", status.Stdout);

            var report = await SandboxctlAsync(expectedExit: 4, "exec", id, "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 4");
            using (var json = System.Text.Json.JsonDocument.Parse(report.Stdout))
            {
                Assert.Equal(4, json.RootElement.GetProperty("exit_status").GetInt32());
                Assert.Equal("out\n", json.RootElement.GetProperty("stdout").GetString());
                Assert.Equal("err\n", json.RootElement.GetProperty("stderr").GetString());
            }
            using (var json = System.Text.Json.JsonDocument.Parse((await SandboxctlAsync("metrics", "--json")).Stdout))
                Assert.Contains(json.RootElement.EnumerateArray(), s => s.GetProperty("sandbox_id").GetString() == id && s.GetProperty("containers").GetInt32() == 1);
            var logLines = (await SandboxctlAsync("logs", id, "--json")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.All(logLines, l => Assert.NotNull(System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("source").GetString()));
            Assert.Contains(logLines, l => l.Contains("\"source\":\"agent\""));

            var unknown = await SandboxctlAsync(expectedExit: 2, "exec", "no-such-sandbox", "--", "true");
            Assert.Contains("no sandbox or container 'no-such-sandbox'", unknown.Stderr);
        }
        finally
        {
            await containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", id]);
            await containerd.CtrAsync(["task", "rm", "-f", id]);
            await containerd.CtrAsync(["container", "rm", id]);
        }
    }

    private Task<CommandResult> SandboxctlAsync(params string[] arguments) => SandboxctlAsync(0, arguments);

    private async Task<CommandResult> SandboxctlAsync(int expectedExit, params string[] arguments)
    {
        string sandboxctl = SandboxctlBinary.Locate();
        // the command's own arguments first, then --state-root (before "--", which ends the options)
        var withRoot = arguments.TakeWhile(a => a != "--").Concat(["--state-root", _fixture.StateRoot]).Concat(arguments.SkipWhile(a => a != "--"));
        var result = await ExternalCommand.RunAsync(sandboxctl, withRoot, TimeSpan.FromSeconds(60), stdin: "");
        Assert.True(result.ExitCode == expectedExit, $"sandboxctl {string.Join(' ', arguments)}: exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        return result;
    }
}
