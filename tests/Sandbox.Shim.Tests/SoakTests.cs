using Sandbox.Shim.Tests.Soak;
using Xunit.Abstractions;

namespace Sandbox.Shim.Tests;

/// <summary>A private containerd whose shim runs with the soak's timeouts (<see cref="SoakRunner.Configuration"/>).</summary>
public sealed class SoakContainerdFixture : IAsyncLifetime
{
    public VmBackedContainerdFixture Pod { get; } = new() { Configuration = SoakRunner.Configuration };

    public Task InitializeAsync() => Pod.InitializeAsync();

    public Task DisposeAsync() => Pod.DisposeAsync();
}

/// <summary>
/// The bounded version of `make soak` (issue 15): one cycle of each fault, at a seeded random moment of the container's
/// life, then nothing may be left, no exit lost and no ctr call hung. SANDBOX_SOAK_SEED picks another seed (a failure
/// prints the seed and the cycle, which replay it).
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class SoakTests : IClassFixture<SoakContainerdFixture>
{
    private readonly SoakContainerdFixture _fixture;
    private readonly ITestOutputHelper _output;

    public SoakTests(SoakContainerdFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
    }

    /// <summary>
    /// The faults the soak found a bug with, each at the moment that showed it (issue 15):
    /// <list type="bullet">
    /// <item>vhost-device-vsock killed during `ctr task kill` / `task rm`: the Delete that raced the VM's loss failed,
    /// containerd did not retry it, and the shim, mounts, state and cgroups stayed;</item>
    /// <item>containerd restarted while the shim booted the VM for a create: the create was cancelled with the
    /// connection, and the shim then served no task forever (later: the create failed unheard and the VM stayed);</item>
    /// <item>a frozen guest (QMP stop): every call timed out and `task rm -f` hung; the shim's liveness check now gives
    /// the VM up after agent.liveness_timeout.</item>
    /// </list>
    /// </summary>
    [Theory]
    [InlineData(SoakFault.KillVsockDaemon, SoakMoment.Delete, 0.3)]
    [InlineData(SoakFault.RestartContainerd, SoakMoment.Run, 0.3)]
    [InlineData(SoakFault.GuestFrozen, SoakMoment.Exec, 0.3)]
    public async Task A_fault_that_once_left_a_sandbox_behind_leaves_nothing_now(SoakFault fault, SoakMoment moment, double fraction)
    {
        using var log = new StringWriter();
        var plan = new SoakPlan($"regression-{fault}".ToLowerInvariant(), 0, (fault, moment, fraction));
        var result = Assert.Single(await new SoakRunner(_fixture.Pod, log).RunPlansAsync([plan], CancellationToken.None));
        _output.WriteLine(log.ToString());
        Assert.True(result.Injected, $"the fault found nothing to strike: {result}");
        Assert.True(result.Clean, $"{result}\n--- containerd log (tail) ---\n{_fixture.Pod.Containerd.LogTail(80)}");
    }

    [Fact]
    public async Task One_cycle_of_each_fault_leaves_nothing_loses_no_exit_and_hangs_nothing()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("SANDBOX_SOAK_SEED"), out int s) ? s : 1;
        using var log = new StringWriter();
        var results = await new SoakRunner(_fixture.Pod, log).RunAsync(Enum.GetValues<SoakFault>().Length, seed, CancellationToken.None);
        _output.WriteLine($"seed {seed}\n{log}{SoakSummary.Of(results)}");
        Assert.True(results.All(r => r.Clean), $"seed {seed}:\n{log}\n--- containerd log (tail) ---\n{_fixture.Pod.Containerd.LogTail(80)}");
    }
}
