using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Fixture;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>The pod tests with the `runc` handler (io.containerd.runc.v2): proves the client, the fixture and the tests.</summary>
[Trait("Category", "EndToEnd")]
public sealed class RuncHandlerPodTests(RuncCriFixture fixture, ITestOutputHelper output)
    : CriPodTests<RuncCriFixture>(fixture, output), IClassFixture<RuncCriFixture>
{
    /// <summary>The reference for SandboxHandlerPodTests' refusal: with runc a hostNetwork pod runs.</summary>
    [Fact]
    public async Task A_host_network_pod_runs()
    {
        var pod = await Fixture.RunPodAsync("host-network", null, privileged: false, NamespaceMode.Node);
        await Fixture.StopAndRemovePodAsync(pod);
    }
}
