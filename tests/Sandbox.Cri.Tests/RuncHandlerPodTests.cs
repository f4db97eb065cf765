using Sandbox.Cri.Tests.Fixture;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>The pod tests with the `runc` handler (io.containerd.runc.v2): proves the client, the fixture and the tests.</summary>
[Trait("Category", "EndToEnd")]
public sealed class RuncHandlerPodTests(RuncCriFixture fixture, ITestOutputHelper output)
    : CriPodTests<RuncCriFixture>(fixture, output), IClassFixture<RuncCriFixture>;
