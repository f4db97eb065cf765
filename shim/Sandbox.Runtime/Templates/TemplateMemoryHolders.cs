using System.Globalization;
using Sandbox.Hypervisors.Templates;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// Finds the sealed memfd of a template that another shim holds (its clones' pages are then shared with this one's),
/// or makes one from the memory file. Each holder is a file &lt;template&gt;/holders/&lt;pid&gt; with the descriptor
/// number; an entry whose process has gone, or whose descriptor is no longer that memfd, is removed when seen.
/// </summary>
public static class TemplateMemoryHolders
{
    /// <summary>A descriptor of the template's sealed memory, and whether it was shared or copied (then the copy may
    /// still run: <see cref="SealedTemplateMemory.Sealed"/>). The caller holds it for as long as its sandbox runs
    /// (other clones may open it meanwhile) and calls <see cref="Release"/> then.</summary>
    public static (SealedTemplateMemory Memory, bool Shared) Acquire(VmTemplate template)
    {
        Directory.CreateDirectory(template.HoldersDirectory);
        foreach (var entry in Directory.EnumerateFiles(template.HoldersDirectory))
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId)
                continue;
            SealedTemplateMemory? held = null;
            try
            {
                if (int.TryParse(File.ReadAllText(entry).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int fd))
                    held = SealedTemplateMemory.OpenHeldBy(pid, fd, template.MemoryName);
            }
            catch (IOException)
            {
            }
            if (held is not null)
            {
                Register(template, held);
                return (held, true);
            }
            TryDelete(entry);
        }
        var copied = SealedTemplateMemory.StartCopyFrom(template.MemoryFile, template.MemoryName);
        _ = RegisterOnceSealedAsync(template, copied);
        return (copied, false);
    }

    /// <summary>Others may share a copy only once it is whole and sealed; a failed copy is never offered (the clone
    /// that waits for it boots cold and says why).</summary>
    private static async Task RegisterOnceSealedAsync(VmTemplate template, SealedTemplateMemory memory)
    {
        try
        {
            await memory.Sealed.ConfigureAwait(false);
            Register(template, memory);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Drops this process's holder entry (the memfd itself closes with <paramref name="memory"/>).</summary>
    public static void Release(VmTemplate template, SealedTemplateMemory memory)
    {
        TryDelete(Path.Combine(template.HoldersDirectory, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)));
        memory.Dispose();
    }

    private static void Register(VmTemplate template, SealedTemplateMemory memory) =>
        File.WriteAllText(Path.Combine(template.HoldersDirectory, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)),
            memory.Descriptor.ToString(CultureInfo.InvariantCulture) + "\n");

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
