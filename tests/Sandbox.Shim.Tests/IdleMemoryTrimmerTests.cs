using Sandbox.Shim.Daemon;

namespace Sandbox.Shim.Tests;

/// <summary>When the daemon trims its heap: after a quiet period, and only once enough was allocated since the last trim.</summary>
public class IdleMemoryTrimmerTests
{
    private const long Quiet = IdleMemoryTrimmer.QuietBytes;
    private const long Worth = IdleMemoryTrimmer.WorthTrimmingBytes;

    private long _allocated;
    private int _trims;
    private readonly List<string> _log = new();

    private IdleMemoryTrimmer NewTrimmer() => new(() => _allocated, () => _trims++, _log.Add, startTimer: false);

    [Fact]
    public void Trims_once_the_process_goes_quiet_after_a_burst()
    {
        var trimmer = NewTrimmer();
        _allocated += 8 * Worth; // create and start
        Assert.False(trimmer.Tick()); // that period was busy
        Assert.True(trimmer.Tick()); // this one was quiet
        Assert.Equal(1, _trims);
        Assert.False(trimmer.Tick()); // nothing allocated since
        Assert.Equal(1, _trims);
        Assert.Single(_log);
        Assert.Contains("heap trimmed", _log[0]);
    }

    [Fact]
    public void Does_not_trim_while_the_process_keeps_allocating()
    {
        var trimmer = NewTrimmer();
        for (int i = 0; i < 10; i++)
        {
            _allocated += Quiet * 4;
            Assert.False(trimmer.Tick());
        }
        Assert.Equal(0, _trims);
    }

    [Fact]
    public void Does_not_trim_again_until_enough_was_allocated_since_the_last_trim()
    {
        var trimmer = NewTrimmer();
        _allocated += 2 * Worth;
        trimmer.Tick();
        Assert.True(trimmer.Tick());

        // a chatty container: a little every period, never enough in one period to count as busy
        int ticks = 0;
        while (!trimmer.Tick())
        {
            _allocated += Quiet / 2;
            Assert.True(++ticks < 1000, "never trimmed again");
        }
        Assert.Equal(2, _trims);
        Assert.InRange(ticks, (int)(Worth / (Quiet / 2)), (int)(Worth / (Quiet / 2)) + 1);
    }

    [Fact]
    public void An_idle_process_that_allocated_little_is_left_alone()
    {
        var trimmer = NewTrimmer();
        _allocated += Worth / 2;
        for (int i = 0; i < 10; i++)
            Assert.False(trimmer.Tick());
        Assert.Equal(0, _trims);
    }
}
