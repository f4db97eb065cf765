using Sandbox.Hypervisors.Templates;

namespace Sandbox.Hypervisors.Tests.Templates;

public sealed class SealedTemplateMemoryTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), "template-memory-" + Guid.NewGuid().ToString("N"));

    public void Dispose() => File.Delete(_file);

    /// <summary>A sparse 8 MiB file with data at 0 and at 5 MiB.</summary>
    private void WriteSparseMemory()
    {
        using var stream = new FileStream(_file, FileMode.Create, FileAccess.Write);
        stream.SetLength(8 << 20);
        stream.Write("start"u8);
        stream.Position = 5 << 20;
        stream.Write("middle"u8);
    }

    private static byte[] ReadAt(int fd, long offset, int count)
    {
        using var stream = new FileStream($"/proc/self/fd/{fd}", FileMode.Open, FileAccess.Read);
        stream.Position = offset;
        var buffer = new byte[count];
        stream.ReadExactly(buffer);
        return buffer;
    }

    [Fact]
    public async Task The_copy_holds_the_files_data_at_its_size_and_refuses_writes()
    {
        WriteSparseMemory();
        using var memory = SealedTemplateMemory.StartCopyFrom(_file, "sandbox-template-test");
        await memory.Sealed;

        Assert.Equal(8 << 20, memory.Size);
        Assert.Equal("start"u8.ToArray(), ReadAt(memory.Descriptor, 0, 5));
        Assert.Equal("middle"u8.ToArray(), ReadAt(memory.Descriptor, 5 << 20, 6));
        Assert.Equal(new byte[16], ReadAt(memory.Descriptor, 1 << 20, 16)); // a hole stays zero
        // sealed: a clone's VMM that opens it for writing cannot change what the other clones map
        // (EPERM from write(2), which .NET reports as UnauthorizedAccessException)
        var refused = Assert.Throws<UnauthorizedAccessException>(() =>
        {
            using var writable = new FileStream($"/proc/self/fd/{memory.Descriptor}", FileMode.Open, FileAccess.ReadWrite);
            writable.Write("poison"u8);
            writable.Flush();
        });
        Assert.Contains("not permitted", refused.InnerException?.Message ?? "", StringComparison.OrdinalIgnoreCase);
        Assert.Equal("start"u8.ToArray(), ReadAt(memory.Descriptor, 0, 5));
    }

    [Fact]
    public async Task A_data_extent_longer_than_one_copy_call_arrives_whole_at_its_offset()
    {
        var data = new byte[20 << 20];
        new Random(14).NextBytes(data);
        using (var stream = new FileStream(_file, FileMode.Create, FileAccess.Write))
        {
            stream.SetLength(32 << 20);
            stream.Position = 4 << 20;
            stream.Write(data);
        }
        using var memory = SealedTemplateMemory.StartCopyFrom(_file, "sandbox-template-test");
        await memory.Sealed;

        Assert.Equal(32 << 20, memory.Size);
        Assert.Equal(data, ReadAt(memory.Descriptor, 4 << 20, data.Length));
        Assert.Equal(new byte[4096], ReadAt(memory.Descriptor, 0, 4096));
        Assert.Equal(new byte[4096], ReadAt(memory.Descriptor, 24 << 20, 4096));
    }

    [Fact]
    public async Task Another_process_can_open_the_memfd_a_holder_has_and_nothing_else()
    {
        WriteSparseMemory();
        using var memory = SealedTemplateMemory.StartCopyFrom(_file, "sandbox-template-test");
        await memory.Sealed;

        using var opened = SealedTemplateMemory.OpenHeldBy(Environment.ProcessId, memory.Descriptor, "sandbox-template-test");
        Assert.NotNull(opened);
        Assert.NotEqual(memory.Descriptor, opened.Descriptor);
        Assert.Equal("middle"u8.ToArray(), ReadAt(opened.Descriptor, 5 << 20, 6));
        // another name, a descriptor that is not a memfd, a process that does not exist
        Assert.Null(SealedTemplateMemory.OpenHeldBy(Environment.ProcessId, memory.Descriptor, "sandbox-template-other"));
        Assert.Null(SealedTemplateMemory.OpenHeldBy(Environment.ProcessId, 0, "sandbox-template-test"));
        Assert.Null(SealedTemplateMemory.OpenHeldBy(int.MaxValue, memory.Descriptor, "sandbox-template-test"));
    }

    [Fact]
    public async Task Disposed_while_it_copies_the_copy_still_ends_whole_and_only_then_the_descriptor_closes()
    {
        var data = new byte[48 << 20];
        new Random(15).NextBytes(data);
        await File.WriteAllBytesAsync(_file, data);
        var memory = SealedTemplateMemory.StartCopyFrom(_file, "sandbox-template-test");
        int fd = memory.Descriptor;
        Assert.Equal(data.Length, memory.Size); // sized at once, for a VMM that maps it while the copy runs

        memory.Dispose();
        await memory.Sealed; // the copy was not cut short by the close (it would fault with EBADF)
        for (int i = 0; i < 100 && IsTemplateMemfd(fd); i++)
            await Task.Delay(10);
        Assert.False(IsTemplateMemfd(fd));
    }

    private static bool IsTemplateMemfd(int fd)
    {
        try
        {
            return File.ResolveLinkTarget($"/proc/self/fd/{fd}", returnFinalTarget: false)?.FullName == "/memfd:sandbox-template-test (deleted)";
        }
        catch (IOException)
        {
            return false;
        }
    }
}
