using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>One private containerd (with the shim installed and the busybox image imported) for the end-to-end tests.</summary>
public sealed class RuncBackedContainerdFixture : IAsyncLifetime
{
    public const string Runtime = "io.containerd.sandbox.v2";

    public PrivateContainerd Containerd { get; private set; } = null!;

    public string Image => BusyboxOciImage.DefaultName;

    public async Task InitializeAsync()
    {
        var options = new PrivateContainerdOptions();
        options.Shims[ShimBinary.FileName] = ShimBinary.Locate();
        options.Environment["SANDBOX_SHIM_BACKEND"] = "runc";
        Containerd = await PrivateContainerd.StartAsync(options);
        string tar = Path.Combine(Containerd.Directory, "busybox.tar");
        BusyboxOciImage.Build(tar);
        await Containerd.ImportImageAsync(tar);
    }

    public async Task DisposeAsync() => await Containerd.DisposeAsync();
}

/// <summary>
/// containerd 1.6 → containerd-shim-sandbox-v2 → host runc (SANDBOX_SHIM_BACKEND=runc), through `ctr run`.
/// Needs root, containerd, ctr, runc and busybox-static.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class ContainerdEndToEndTests : IClassFixture<RuncBackedContainerdFixture>
{
    private readonly RuncBackedContainerdFixture _fixture;

    public ContainerdEndToEndTests(RuncBackedContainerdFixture fixture)
    {
        _fixture = fixture;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;

    [Fact]
    public async Task Ctr_run_prints_the_output_and_leaves_nothing_behind()
    {
        var result = await RunAsync("e2e-echo", "echo", "hi");

        Assert.True(result.ExitCode == 0, Describe(result));
        Assert.Equal("hi", result.Stdout.Trim());
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ctr_run_passes_the_exit_code_through()
    {
        var result = await RunAsync("e2e-exit3", "sh", "-c", "echo out; echo err >&2; exit 3");

        Assert.True(result.ExitCode == 3, Describe(result));
        Assert.Equal("out", result.Stdout.Trim());
        Assert.Contains("err", result.Stderr);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Every_byte_of_a_large_output_arrives_before_the_exit()
    {
        var result = await RunAsync("e2e-large", "sh", "-c", "seq 1 20000");

        Assert.True(result.ExitCode == 0, Describe(result));
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(20000, lines.Length);
        Assert.Equal("20000", lines[^1].Trim());
        await AssertNothingLeftAsync();
    }

    private Task<CommandResult> RunAsync(string id, params string[] command) =>
        Containerd.CtrAsync(new[] { "run", "--rm", "--runtime", RuncBackedContainerdFixture.Runtime, _fixture.Image, id }.Concat(command),
            TimeSpan.FromMinutes(2));

    private async Task AssertNothingLeftAsync()
    {
        // the daemon exits after containerd's Shutdown and the `delete` subcommand; give it a moment
        for (int i = 0; i < 200 && (Containerd.LeftoverShimProcesses().Count > 0 || Containerd.LeftoverShimSockets().Count > 0); i++)
            await Task.Delay(50);
        Assert.Empty(Containerd.LeftoverShimProcesses());
        Assert.Empty(Containerd.LeftoverShimSockets());
        Assert.Empty(Containerd.LeftoverMounts());
    }

    private string Describe(CommandResult result) => $"{result}\n--- containerd log (tail) ---\n{Tail(Containerd.Log, 60)}";

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
