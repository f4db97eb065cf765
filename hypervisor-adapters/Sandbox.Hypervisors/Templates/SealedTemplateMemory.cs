using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Hypervisors.Templates;

/// <summary>
/// A template's guest memory as its clones map it: a memfd holding a copy of the template's memory file, sealed
/// against writes, growing and shrinking (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL). QEMU 7.2 opens a
/// memory-backend-file read-write even when it maps it privately, so a clone given the template's file could write
/// into every other clone's memory; with the sealed memfd (opened through /proc/self/fd) its writes land in its
/// private copy-on-write pages, and write(2) and fallocate(2) on it fail. Clones that map the same memfd share its
/// pages until they write them.
/// </summary>
public sealed unsafe class SealedTemplateMemory : IDisposable
{
    /// <summary>The seals every template memfd carries.</summary>
    public static int Seals => F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;

    private const int CopyChunk = 1 << 20;
    private int _fd;

    private SealedTemplateMemory(int fd, long size, Task @sealed)
    {
        _fd = fd;
        Size = size;
        Sealed = @sealed;
    }

    /// <summary>The memfd (close-on-exec; <see cref="Qemu.QemuAdapter"/> lifts that for the VMM's start). Until
    /// <see cref="Sealed"/> completes it may still be filling: a VMM may map it, but must not run the guest yet.</summary>
    public int Descriptor => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(SealedTemplateMemory));

    /// <summary>Bytes (the guest's RAM size).</summary>
    public long Size { get; }

    /// <summary>Completes once the memfd holds the template's memory and is sealed: at once for one another holder
    /// made; when the copy ends for one from <see cref="StartCopyFrom"/> (faulted with its <see cref="IOException"/>
    /// when the copy failed).</summary>
    public Task Sealed { get; }

    /// <summary>A new memfd named <paramref name="name"/>, sized as <paramref name="memoryFile"/>, into which a
    /// background copy of the file's data (sparse: only the ranges that hold data) is started; <see cref="Sealed"/>
    /// completes once it is copied and sealed. The ~30 ms copy thereby overlaps the VMM's own start: a QEMU waiting
    /// with `-incoming defer` maps guest RAM but touches none of it (measured: RSS 0 of the mapping) until the
    /// restore, which waits for <see cref="Sealed"/>.</summary>
    public static SealedTemplateMemory StartCopyFrom(string memoryFile, string name)
    {
        int source = LibCStrings.open(memoryFile, O_RDONLY | O_CLOEXEC);
        if (source < 0)
            throw new IOException($"cannot open the template memory {memoryFile}: {Errno.DescribeLast()}");
        int memfd = -1;
        try
        {
            long size = lseek(source, 0, SEEK_END);
            if (size <= 0)
                throw new IOException($"the template memory {memoryFile} is empty");
            var nameBytes = LibCStrings.CString(name)!;
            fixed (byte* namePointer = nameBytes)
                memfd = memfd_create(namePointer, MFD_CLOEXEC | MFD_ALLOW_SEALING);
            if (memfd < 0)
                throw new IOException($"memfd_create for the template memory failed: {Errno.DescribeLast()}");
            if (ftruncate(memfd, size) != 0)
                throw new IOException($"sizing the template memfd to {size} bytes failed: {Errno.DescribeLast()}");
            var (from, to) = (source, memfd); // the lambda takes these values: source and memfd are cleared below
            var copy = Task.Run(() => CopyAndSeal(from, to, size, memoryFile));
            var result = new SealedTemplateMemory(memfd, size, copy);
            memfd = -1;
            source = -1; // the copy closes it
            return result;
        }
        finally
        {
            FileDescriptors.CloseQuietly(source);
            FileDescriptors.CloseQuietly(memfd);
        }
    }

    private static void CopyAndSeal(int source, int memfd, long size, string memoryFile)
    {
        try
        {
            CopyData(source, memfd, size, memoryFile);
            if (fcntl(memfd, F_ADD_SEALS, Seals) != 0)
                throw new IOException($"sealing the template memfd failed: {Errno.DescribeLast()}");
        }
        finally
        {
            close(source);
        }
    }

    /// <summary>Opens the template memfd another process holds as descriptor <paramref name="fd"/> (another clone's
    /// shim), when it is one: a memfd called <paramref name="name"/>, sealed with <see cref="Seals"/>. Null when that
    /// process or descriptor is gone or is something else.</summary>
    public static SealedTemplateMemory? OpenHeldBy(int pid, int fd, string name)
    {
        string link = $"/proc/{pid}/fd/{fd}";
        try
        {
            if (File.ResolveLinkTarget(link, returnFinalTarget: false)?.FullName is not { } target
                || target != $"/memfd:{name} (deleted)")
                return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        int opened = LibCStrings.open(link, O_RDONLY | O_CLOEXEC);
        if (opened < 0)
            return null;
        if ((fcntl(opened, F_GET_SEALS) & Seals) != Seals)
        {
            close(opened);
            return null;
        }
        long size = lseek(opened, 0, SEEK_END);
        lseek(opened, 0, SEEK_SET);
        return new SealedTemplateMemory(opened, size, Task.CompletedTask);
    }

    private static void CopyData(int source, int target, long size, string what)
    {
        byte[] buffer = new byte[CopyChunk];
        long offset = 0;
        fixed (byte* chunk = buffer)
        {
            while (offset < size)
            {
                long data = lseek(source, offset, SEEK_DATA);
                if (data < 0)
                    break; // ENXIO: no data after offset
                long hole = lseek(source, data, SEEK_HOLE);
                for (long at = data; at < hole;)
                {
                    long read = pread(source, chunk, (int)Math.Min(CopyChunk, hole - at), at);
                    if (read < 0 && Errno.Last == EINTR) continue;
                    if (read <= 0)
                        throw new IOException($"reading the template memory {what} at {at} failed: {Errno.DescribeLast()}");
                    for (long done = 0; done < read;)
                    {
                        long written = pwrite(target, chunk + done, (int)(read - done), at + done);
                        if (written < 0 && Errno.Last == EINTR) continue;
                        if (written <= 0)
                            throw new IOException($"writing the template memfd at {at + done} failed: {Errno.DescribeLast()}");
                        done += written;
                    }
                    at += read;
                }
                offset = hole;
            }
        }
    }

    /// <summary>Closes the memfd; during a copy, once the copy has ended (it writes through this descriptor).</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0)
            return;
        if (Sealed.IsCompleted)
            close(fd);
        else
            Sealed.ContinueWith(_ => close(fd), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
