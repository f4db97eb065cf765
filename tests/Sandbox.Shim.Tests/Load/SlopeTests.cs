namespace Sandbox.Shim.Tests.Load;

public sealed class SlopeTests
{
    [Fact]
    public void A_flat_series_has_no_slope_and_a_line_has_its_own()
    {
        Assert.Equal(0, Slope.Of([5, 5, 5, 5]));
        Assert.Equal(2, Slope.Of([1, 3, 5, 7, 9]), 9);
        Assert.Equal(0.5, Slope.Of([10, 10, 11, 11, 12, 12]), 1);
        Assert.Equal(0, Slope.Of([42]));
    }

    [Fact]
    public void Process_figures_of_this_process_are_read_from_proc()
    {
        var figures = ProcessFigures.Of(Environment.ProcessId);
        Assert.NotNull(figures);
        Assert.True(figures.RssKiB > 0 && figures.Descriptors > 0 && figures.Threads > 0);
        Assert.Null(ProcessFigures.Of(int.MaxValue));
    }
}
