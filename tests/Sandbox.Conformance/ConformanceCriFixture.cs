using Sandbox.Cri.Tests.Fixture;

namespace Sandbox.Conformance;

/// <summary>
/// The CRI tests' private containerd (handlers runc and sandbox, the CNI bridge, the pause image), with image pulls
/// going to a <see cref="LocalRegistry"/> through its hosts directory.
/// </summary>
public sealed class ConformanceCriFixture(string registryHostsDirectory) : CriFixture(SandboxHandler)
{
    protected override string? RegistryHostsDirectory => registryHostsDirectory;
}
