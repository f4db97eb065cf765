using System.Text.RegularExpressions;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

public sealed class PhaseClockTests
{
    [Fact]
    public async Task Each_phase_is_the_time_since_the_previous_mark_in_the_order_marked()
    {
        var clock = new PhaseClock();
        clock.Mark("state");
        await Task.Delay(120);
        clock.Mark("QEMU restored");
        clock.Mark("CreateSandbox");

        var match = Regex.Match(clock.Describe(), @"^state (\d+) ms, QEMU restored (\d+) ms, CreateSandbox (\d+) ms$");
        Assert.True(match.Success, clock.Describe());
        Assert.InRange(int.Parse(match.Groups[2].Value), 100, 60_000); // the delay lands in the phase it ended
        Assert.InRange(int.Parse(match.Groups[3].Value), 0, 60_000);
    }

    [Fact]
    public void Nothing_marked_describes_as_empty() => Assert.Equal("", new PhaseClock().Describe());
}
