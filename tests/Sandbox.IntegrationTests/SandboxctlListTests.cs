using Sandbox.Ctl;
using Sandbox.IntegrationTests.Support;

namespace Sandbox.IntegrationTests;

/// <summary>`sandboxctl list` reads what a sandbox is from its state directory alone.</summary>
[Collection(SharedVmCollection.Name)]
public sealed class SandboxctlListTests(SharedVmFixture fixture)
{
    [Fact]
    public void Lists_a_running_VM_from_its_state_directory_and_flags_a_stale_one()
    {
        var stale = Path.Combine(fixture.StateRoot, "stale-leftover");
        Directory.CreateDirectory(stale);
        try
        {
            var listings = ListCommand.Read(fixture.StateRoot);

            var running = Assert.Single(listings, l => l.SandboxId == fixture.Vm.SandboxId);
            Assert.True(running.VmmRunning);
            Assert.Equal(fixture.Vm.Hypervisor.Pid, running.VmmPid);
            Assert.Equal(fixture.Vm.Hypervisor.ConsoleLogPath, running.ConsoleLog);
            Assert.Null(running.Problem);

            var leftover = Assert.Single(listings, l => l.SandboxId == "stale-leftover");
            Assert.False(leftover.VmmRunning);
            Assert.Contains("sandbox.json", leftover.Problem);
        }
        finally
        {
            Directory.Delete(stale);
        }
    }
}
