using Sandbox.Ctl.Logs;

namespace Sandbox.UnitTests;

/// <summary>`sandboxctl logs`: each line placed in time (host stamps, the guest's seconds since boot) and the logs merged.</summary>
public sealed class SandboxLogsTests
{
    private static readonly DateTime Booted = new(2026, 12, 5, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Console_lines_are_placed_after_the_boot_and_the_agents_own_lines_are_marked_as_the_agents()
    {
        var clock = new LogLineClock("console", console: true, Booted);
        var kernel = clock.Read("[    1.500000] Run /init as init process");
        var agent = clock.Read("[    2.250000] sandbox-agent: listening on vsock port 1024");
        var unstamped = clock.Read("plain output of a program");

        Assert.Equal(new LogEntry(Booted.AddSeconds(1.5), "console", "Run /init as init process"), kernel);
        Assert.Equal(new LogEntry(Booted.AddSeconds(2.25), "agent", "sandbox-agent: listening on vsock port 1024"), agent);
        Assert.Equal(Booted.AddSeconds(2.25), unstamped.Time);
    }

    [Fact]
    public void Host_stamped_lines_keep_their_time_and_continuation_lines_take_the_one_before()
    {
        var clock = new LogLineClock("shim", console: false, Booted);
        var first = clock.Read("2026-12-05T12:00:03.125Z sandbox pod: VM running");
        var next = clock.Read("  Guest console: /run/x/console.log");

        Assert.Equal(new LogEntry(new DateTime(2026, 12, 5, 12, 0, 3, 125, DateTimeKind.Utc), "shim", "sandbox pod: VM running"), first);
        Assert.Equal(first.Time, next.Time);
    }

    [Fact]
    public void Logs_merge_in_time_order_and_keep_their_own_order_for_equal_times()
    {
        var shim = new List<LogEntry> { new(Booted.AddSeconds(1), "shim", "a"), new(Booted.AddSeconds(3), "shim", "d") };
        var console = new List<LogEntry> { new(Booted.AddSeconds(2), "console", "b"), new(Booted.AddSeconds(2), "console", "c") };
        Assert.Equal(["a", "b", "c", "d"], SandboxLogMerge.Merge([shim, console]).Select(e => e.Text));
    }

    [Fact]
    public void A_follower_returns_only_complete_new_lines()
    {
        string path = Path.GetTempFileName();
        try
        {
            var follower = new LogFileFollower(path, new LogLineClock("qemu", console: false, Booted));
            File.WriteAllText(path, "2026-12-05T12:00:01.000Z one\n2026-12-05T12:00:02.000Z tw");
            Assert.Equal(["one"], follower.ReadNew().Select(e => e.Text));
            File.AppendAllText(path, "o\n");
            Assert.Equal(["two"], follower.ReadNew().Select(e => e.Text));
            Assert.Empty(follower.ReadNew());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
