namespace Sandbox.Shim.Tests.Soak;

/// <summary>The soak's pure parts: its plans replay from a seed, and the `ctr events` lines it reads.</summary>
public sealed class SoakPlanTests
{
    [Fact]
    public void A_seed_gives_the_same_plan_every_time_and_its_first_cycles_take_each_fault_once()
    {
        var first = Enumerable.Range(0, 40).Select(cycle => SoakRunner.Plan(42, cycle)).ToArray();
        var again = Enumerable.Range(0, 40).Select(cycle => SoakRunner.Plan(42, cycle)).ToArray();

        Assert.Equal(first, again);
        Assert.Equal(Enum.GetValues<SoakFault>(), first.Take(Enum.GetValues<SoakFault>().Length).Select(p => p.Fault));
        Assert.NotEqual(first, Enumerable.Range(0, 40).Select(cycle => SoakRunner.Plan(43, cycle)).ToArray());
        Assert.All(first, p => Assert.InRange(p.Fraction, 0, 1));
        Assert.DoesNotContain(first, p => p.Fault == SoakFault.GuestPanic && p.Moment == SoakMoment.Run);
    }

    [Fact]
    public void Ctr_events_lines_give_the_topic_container_process_and_exit_status()
    {
        var exit = ContainerdEventLog.Parse(
            "2026-12-04 17:00:00.123 +0000 UTC default /tasks/exit {\"container_id\":\"c1\",\"id\":\"c1\",\"pid\":42,\"exit_status\":137,\"exited_at\":\"2026-12-04T17:00:00Z\"}");
        var start = ContainerdEventLog.Parse("2026-12-04 17:00:00.1 +0000 UTC default /tasks/start {\"container_id\":\"c1\",\"pid\":42}");
        var zeroExit = ContainerdEventLog.Parse("2026-12-04 17:00:00.1 +0000 UTC default /tasks/exit {\"container_id\":\"c1\",\"id\":\"e1\"}");

        Assert.Equal(new TaskEvent("/tasks/exit", "c1", "c1", 137), exit);
        Assert.Equal(new TaskEvent("/tasks/start", "c1", "c1", null), start);
        Assert.Equal(new TaskEvent("/tasks/exit", "c1", "e1", 0), zeroExit); // protobuf's JSON leaves out a zero status
        Assert.Null(ContainerdEventLog.Parse("2026-12-04 17:00:00.1 +0000 UTC default /snapshot/remove {\"key\":\"c1\"}"));
        Assert.Null(ContainerdEventLog.Parse("garbage"));
    }
}
