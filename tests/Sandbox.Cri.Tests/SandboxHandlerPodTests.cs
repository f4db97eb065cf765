using Sandbox.Cri.Tests.Fixture;
using Sandbox.Hypervisors.Processes;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>
/// The pod tests with the `sandbox` handler (containerd-shim-sandbox-v2, one QEMU VM per pod), plus what only a VM
/// runtime guarantees. Compiled only with -p:SandboxHandlerPodTests=true until the shim's pod support lands
/// (see Sandbox.Cri.Tests.csproj).
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class SandboxHandlerPodTests(SandboxCriFixture fixture, ITestOutputHelper output)
    : CriPodTests<SandboxCriFixture>(fixture, output), IClassFixture<SandboxCriFixture>
{
    [Fact]
    public async Task Each_pod_is_a_vm_of_its_own_shared_by_its_containers()
    {
        var pod = await Fixture.SharedPodAsync();
        var neighbour = await Fixture.NeighbourPodAsync();

        var server = await Fixture.ExecAsync(pod, "server", "cat", "/proc/sys/kernel/random/boot_id");
        var client = await Fixture.ExecAsync(pod, "client", "cat", "/proc/sys/kernel/random/boot_id");
        var other = await Fixture.ExecAsync(neighbour, "keeper", "cat", "/proc/sys/kernel/random/boot_id");
        Assert.True(server.ExitCode == 0 && client.ExitCode == 0 && other.ExitCode == 0, $"{server}\n{client}\n{other}");
        string host = (await File.ReadAllTextAsync("/proc/sys/kernel/random/boot_id")).Trim();

        Assert.Equal(server.Stdout, client.Stdout);              // one VM for the pod's containers
        Assert.NotEqual(server.Stdout.Trim(), other.Stdout.Trim()); // another VM for the other pod
        Assert.NotEqual(host, server.Stdout.Trim());
        Assert.NotEqual(host, other.Stdout.Trim());

        // and on the host: the VMs' processes (QEMU, vhost-device-vsock) in each pod's state directory
        var vm = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, pod.Id));
        var otherVm = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, neighbour.Id));
        Assert.Contains(vm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        Assert.Contains(otherVm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        Assert.Empty(vm.Select(p => p.Pid).Intersect(otherVm.Select(p => p.Pid)));
    }
}
