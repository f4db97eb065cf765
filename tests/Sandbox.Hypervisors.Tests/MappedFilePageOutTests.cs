using Sandbox.Hypervisors.Processes;

namespace Sandbox.Hypervisors.Tests;

public class MappedFilePageOutTests
{
    [Fact]
    public void Parses_a_mapping_of_a_file()
    {
        Assert.True(MappedFilePageOut.TryParseMappingHeader(
            "7f8ac8000000-7f8acbedb000 r--p 00000000 fe:01 1234567                    /work/main/build/guest/vmlinux",
            out var start, out var end, out var path));
        Assert.Equal(0x7f8ac8000000UL, start);
        Assert.Equal(0x7f8acbedb000UL, end);
        Assert.Equal("/work/main/build/guest/vmlinux", path);
    }

    [Fact]
    public void Keeps_spaces_inside_a_path_and_has_no_path_for_anonymous_memory()
    {
        Assert.True(MappedFilePageOut.TryParseMappingHeader(
            "55d0c0000000-55d0c0021000 r--p 00001000 08:02 42 /srv/guest images/vmlinux (deleted)", out _, out _, out var path));
        Assert.Equal("/srv/guest images/vmlinux (deleted)", path);
        Assert.True(MappedFilePageOut.TryParseMappingHeader("7fa295800000-7fa295c00000 rw-p 00000000 00:00 0 ", out _, out _, out var none));
        Assert.Null(none);
    }

    [Theory]
    [InlineData("Rss:                4660 kB")]
    [InlineData("VmFlags: rd mr mw me")]
    [InlineData("")]
    public void Other_smaps_lines_are_not_mapping_headers(string line) =>
        Assert.False(MappedFilePageOut.TryParseMappingHeader(line, out _, out _, out _));

    [Fact]
    public void A_process_that_does_not_map_the_files_is_reported_not_thrown()
    {
        var result = MappedFilePageOut.Run(Environment.ProcessId, ["/nonexistent/vmlinux"]);
        Assert.Contains("maps none of /nonexistent/vmlinux", result.Problem);
    }
}
