using System.Diagnostics;
using Sandbox.Agent.Native;

namespace Sandbox.Agent.Tests;

/// <summary>The line the agent logs when a crun command hangs: each process of the tree, its state and where it waits.</summary>
public sealed class ProcessTreeSnapshotTests
{
    [Fact]
    public async Task A_shell_waiting_for_its_sleep_is_described_with_both_processes_their_state_and_wait()
    {
        using var shell = Process.Start("/bin/sh", ["-c", "sleep 30 & wait"]);
        try
        {
            string described = "";
            for (int i = 0; i < 100 && !described.Contains("sleep"); i++)
            {
                await Task.Delay(20);
                described = ProcessTreeSnapshot.Describe(shell.Id);
            }

            Assert.Matches($@"^pid {shell.Id} sh S wchan \S+, pid \d+ sleep S wchan \S+$", described);
        }
        finally
        {
            shell.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void A_process_that_is_gone_is_said_to_be()
    {
        using var exited = Process.Start("/bin/true");
        exited.WaitForExit();

        Assert.Equal($"pid {exited.Id} is gone", ProcessTreeSnapshot.Describe(exited.Id));
    }
}
